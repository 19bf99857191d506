import Foundation
internal import Crypto

/// Loads a rules directory into a compiled ``RuleBundle``, or explains precisely why it cannot.
///
/// Layout: `bundle.yaml` (version), `vocabulary.yaml`, `rulesets/*.yaml`; optionally a site profile
/// (`profiles/NAME.yaml`) selected by the caller. Rule tests in `tests/` are run by ``RuleTestRunner``.
/// Errors block loading; warnings are reported and loading continues.
package struct RuleLoader {
    package struct Result {
        package var bundle: RuleBundle?
        package var log: DiagnosticLog
        /// With a profile: the same files compiled with the parameters they ship with, which the directory's own
        /// rule tests describe (``RuleTestRunner/gate(_:directory:profile:filter:)``); nil if they did not compile
        /// (the profiled compile checks the shipped values too, so that would be a compiler change). Without a
        /// profile: `bundle`.
        package var defaults: RuleBundle? = nil
        /// The profile's own rule tests (its `tests:`, a file or directory, relative to the profile), if it names any.
        package var profileTests: String? = nil
    }

    /// "Today", for the review-date check; injected so tests do not depend on the clock.
    package var today: Double

    package init(today: Double = Date().timeIntervalSince1970) {
        self.today = today
    }

    /// Loads `directory`, applying the profile at `profile` (a path) when given.
    package func load(directory: String, profile: String? = nil) -> Result {
        var log = DiagnosticLog()
        let fm = FileManager.default
        let base = URL(fileURLWithPath: directory)
        // By path within the directory (the profile as "profile"): the hash names the rules, not where they were
        // read from, so `rules check` elsewhere, `reload --expect` and a restart with the path spelt another way agree.
        var hashed: [(String, Data)] = []

        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            log.error(SourceLocation(file: directory, line: 1, column: 1), "not a directory")
            return Result(bundle: nil, log: log)
        }
        // Each file is read once: the bytes hashed are the bytes parsed. (Read twice, an editor's save between the
        // two reads compiled one vocabulary under the other's hash.)
        func read(_ path: String, _ shown: String, hashedAs key: String) -> YAMLSource {
            guard let data = fm.contents(atPath: path) else {
                log.error(SourceLocation(file: shown, line: 1, column: 1), "cannot read file")
                return YAMLSource(path: shown, text: "", root: nil)
            }
            hashed.append((key, data))
            return YAMLSource.parse(data: data, display: shown, log: &log)
        }

        var version = "unversioned"
        let bundlePath = base.appendingPathComponent("bundle.yaml").path
        if fm.fileExists(atPath: bundlePath) {
            let source = read(bundlePath, join(directory, "bundle.yaml"), hashedAs: "bundle.yaml")
            if let root = source.root, let entries = YAMLNode(root, file: source.path).mapping("bundle.yaml", &log) {
                if let meta = entries.first(where: { $0.key == "bundle" })?.value.mapping("bundle", &log) {
                    YAMLNode.checkKeys(meta, allowed: ["version", "description"], in: "bundle", &log)
                    version = meta.first { $0.key == "version" }?.value.string("version", &log) ?? version
                }
            }
        }
        let vocabularyPath = base.appendingPathComponent("vocabulary.yaml").path
        guard fm.fileExists(atPath: vocabularyPath) else {
            log.error(SourceLocation(file: join(directory, "vocabulary.yaml"), line: 1, column: 1), "missing vocabulary file")
            return Result(bundle: nil, log: log)
        }
        let vocabularySource = read(vocabularyPath, join(directory, "vocabulary.yaml"), hashedAs: "vocabulary.yaml")
        guard let vocabulary = VocabularyLoader.load(vocabularySource, &log) else {
            return Result(bundle: nil, log: log)
        }
        let rulesetDirectory = base.appendingPathComponent("rulesets").path
        let names = Self.yamlFiles(in: rulesetDirectory)
        if names.isEmpty {
            log.error(SourceLocation(file: join(directory, "rulesets"), line: 1, column: 1), "no rule sets (*.yaml) found")
        }
        var files: [RuleSetFile] = []
        for name in names {
            let source = read(join(rulesetDirectory, name), join(join(directory, "rulesets"), name), hashedAs: "rulesets/" + name)
            if let file = RuleSetFile.read(source, &log) { files.append(file) }
        }
        var profileName: String?
        var profileTests: String?
        var overrides: [ProfileOverride] = []
        if let profile {
            let source = read(profile, profile, hashedAs: "profile")
            if let root = source.root, let entries = YAMLNode(root, file: profile).mapping("a profile", &log) {
                YAMLNode.checkKeys(entries, allowed: ["profile", "parameters", "tests"], in: "a profile", &log)
                if let tests = entries.first(where: { $0.key == "tests" })?.value.string("tests", &log) {
                    profileTests = Self.resolve(tests, besideProfile: profile)
                }
                if let meta = entries.first(where: { $0.key == "profile" })?.value.mapping("profile", &log) {
                    YAMLNode.checkKeys(meta, allowed: ["id", "description"], in: "profile", &log)
                    profileName = meta.first { $0.key == "id" }?.value.string("id", &log)
                }
                if profileName == nil { log.error(YAMLNode(root, file: profile).location, "a profile needs 'profile: {id: …}'") }
                if let params = entries.first(where: { $0.key == "parameters" })?.value.mapping("parameters", &log) {
                    for item in params {
                        guard let text = item.value.string("the value", &log) else { continue }
                        overrides.append(ProfileOverride(name: item.key, keyNode: item.keyNode, value: text, valueNode: item.value))
                    }
                }
            }
        }
        guard !log.hasErrors else { return Result(bundle: nil, log: log) }

        var compiler = BundleCompiler(vocabulary: vocabulary, today: today)
        let compiled = compiler.compile(files: files, profile: profileName, overrides: overrides, log: &log)
        guard !log.hasErrors, let compiled else { return Result(bundle: nil, log: log) }
        // The shipped parameters, from the same bytes (read once: a save in between cannot make the tests run on
        // other rules than the ones that go live). Its diagnostics are the ones above, less the profile's.
        var defaultsLog = DiagnosticLog()
        var defaultsCompiler = BundleCompiler(vocabulary: vocabulary, today: today)
        let defaultsCompiled = profile == nil ? nil : defaultsCompiler.compile(files: files, profile: nil, overrides: [], log: &defaultsLog)
            .flatMap { defaultsLog.hasErrors ? nil : $0 }

        var hasher = SHA256()
        for (path, data) in hashed.sorted(by: { $0.0 < $1.0 }) {
            hasher.update(data: Array(path.utf8) + [0])
            hasher.update(data: data)
        }
        let hash = "sha256:" + hasher.finalize().hexDigits()
        // The bytes that were loaded (read once, above), not the file read again: it may have changed since.
        let vocabularyBytes = hashed.first { $0.0 == "vocabulary.yaml" }?.1 ?? Data()
        let vocabularyHash = SHA256.hash(data: vocabularyBytes).hexDigits()
        let bundle = RuleBundle(
            version: version, hash: hash, vocabulary: vocabulary, derived: compiled.derived,
            parameters: compiled.parameters, rules: compiled.rules, rulesets: compiled.rulesets, profile: profileName,
            vocabularyHash: vocabularyHash)
        let defaults = defaultsCompiled.map {
            RuleBundle(
                version: version, hash: hash, vocabulary: vocabulary, derived: $0.derived, parameters: $0.parameters,
                rules: $0.rules, rulesets: $0.rulesets, profile: nil, vocabularyHash: vocabularyHash)
        }
        return Result(bundle: bundle, log: log, defaults: profile == nil ? bundle : defaults, profileTests: profileTests)
    }

    /// Where a profile's `tests:` points: relative to the profile's directory unless absolute.
    static func resolve(_ tests: String, besideProfile profile: String) -> String {
        tests.hasPrefix("/") ? tests : URL(fileURLWithPath: profile).deletingLastPathComponent().appendingPathComponent(tests).path
    }

    /// The profile's tests as it names them now, without loading anything else (the rules watcher's poll): nil when
    /// the profile cannot be read or names none.
    package static func profileTests(of profile: String) -> String? {
        var log = DiagnosticLog()
        let source = YAMLSource.read(path: profile, display: profile, log: &log)
        guard let root = source.root, let entries = YAMLNode(root, file: profile).mapping("a profile", &log),
            let tests = entries.first(where: { $0.key == "tests" })?.value.string("tests", &log)
        else { return nil }
        return resolve(tests, besideProfile: profile)
    }

    /// The YAML files of a directory (`.yaml`/`.yml` in any case), sorted; hidden files are left out: editors and
    /// copies leave them beside the real ones (Emacs's lock `.#NAME.yaml`, macOS's `._NAME.yaml`).
    package static func yamlFiles(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
            let lower = name.lowercased()
            return !name.hasPrefix(".") && (lower.hasSuffix(".yaml") || lower.hasSuffix(".yml"))
        }.sorted()
    }

    private func join(_ a: String, _ b: String) -> String {
        a.hasSuffix("/") ? a + b : a + "/" + b
    }
}
