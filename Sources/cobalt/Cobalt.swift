import ArgumentParser
import RuleEngine

@main
struct Cobalt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cobalt: clinical decision support for vitamin B12 in pregnancy and breastfeeding.",
        subcommands: [Serve.self, Rules.self, Eval.self, Send.self, Subscribe.self, Status.self, MetricsCommand.self, Reload.self]
    )
}

/// Prints a command's output and exits with its code.
func finish(_ output: RuleCommands.Output) throws -> Never {
    print(output.text, terminator: "")
    throw ExitCode(output.exitCode)
}

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check and test rule sets.",
        subcommands: [Check.self, Test.self, Table.self]
    )

    struct Table: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the clinical rule table (rule, decision, thresholds, sources) as Markdown.")

        @Argument(help: "The rules directory.") var directory: String = "Rules"

        func run() throws { try finish(RuleCommands.table(directory: directory)) }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load, check and compile a rules directory; print diagnostics as file:line:column.")

        @Argument(help: "The rules directory.") var directory: String = "Rules"
        @Option(help: "A site profile overriding parameters.") var profile: String?

        func run() throws { try finish(RuleCommands.check(directory: directory, profile: profile)) }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run the rule tests in DIR/tests.")

        @Argument(help: "The rules directory.") var directory: String = "Rules"
        @Option(help: "A site profile overriding parameters.") var profile: String?
        @Option(help: "Run only tests whose name contains this text.") var filter: String?

        func run() throws { try finish(RuleCommands.test(directory: directory, profile: profile, filter: filter)) }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a timeline file (JSON array or JSON Lines of events) offline, one result per patient.")

    @Flag(help: "Print one JSON result per line (INTERFACES.md §2).") var json = false
    @Option(help: "The rules directory.") var rules: String = "Rules"
    @Option(help: "A site profile overriding parameters.") var profile: String?
    @Option(help: "Evaluate as of this RFC 3339 time (default: the last event's time).") var at: String?
    @Argument(help: "The timeline file.") var file: String

    func run() throws { try finish(RuleCommands.eval(file: file, directory: rules, profile: profile, at: at, json: json)) }
}
