import ArgumentParser

@main
struct Cobalt: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cobalt clinical decision support")
}
