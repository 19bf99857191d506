import ArgumentParser
import CobaltDaemon
import RuleEngine

@main
struct Cobalt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cobalt: clinical decision support for vitamin B12 in pregnancy and breastfeeding.",
        subcommands: [Serve.self, Rules.self, Eval.self, Send.self, Subscribe.self, Status.self, MetricsCommand.self, Reload.self, Keygen.self]
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
        subcommands: [Check.self, Test.self, Table.self, Diff.self]
    )

    struct Diff: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay a journal through two rule sets; report alerts that would be added or lost (exit 1 if a critical alert is lost).")

        @Option(help: "The SQLite database whose journal to replay.") var journal: String
        @Argument(help: "The current rules directory.") var old: String
        @Argument(help: "The candidate rules directory.") var new: String

        func run() async throws {
            let report = try await RulesDiff.run(journal: journal, old: old, new: new)
            print(report.text, terminator: "")
            if report.lostCritical > 0 { throw ExitCode(1) }
        }
    }

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
