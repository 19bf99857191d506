/// The members of a JSON object, kept sorted by key with each key once.
///
/// Sorted because that is the canonical order (in which events are compared for content) and because
/// an array of pairs is far cheaper to build than a hash table for the dozen members of a typical object — the
/// parser builds one for every object of every event. Lookups scan small objects and binary-search large ones.
package struct JSONObject: Sendable, Equatable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    package typealias Element = (key: String, value: JSONValue)

    package private(set) var members: [Element]

    /// Members already sorted by key (String `<`) and unique — the parser's output.
    init(sortedUniqueMembers members: [Element]) {
        self.members = members
    }

    package init(_ dictionary: [String: JSONValue]) {
        members = dictionary.sorted { $0.key < $1.key }
    }

    package init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    package var startIndex: Int { members.startIndex }
    package var endIndex: Int { members.endIndex }
    package subscript(position: Int) -> Element { members[position] }

    package var keys: [String] { members.map(\.key) }

    package subscript(key: String) -> JSONValue? {
        get {
            if members.count <= 8 {
                // Comparing lengths first (stored in the string, no call) skips most keys that differ: a `==` between
                // unequal strings is a call into the standard library, and decoding looks up every field this way.
                let length = key.utf8.count
                for member in members where member.key.utf8.count == length && member.key == key { return member.value }
                return nil
            }
            let index = position(of: key)
            return index < members.count && members[index].key == key ? members[index].value : nil
        }
        set {
            let index = position(of: key)
            let present = index < members.count && members[index].key == key
            switch (present, newValue) {
            case (true, let value?): members[index].value = value
            case (true, nil): members.remove(at: index)
            case (false, let value?): members.insert((key, value), at: index)
            case (false, nil): break
            }
        }
    }

    /// Where `key` is, or would be inserted to keep the members sorted.
    private func position(of key: String) -> Int {
        var low = 0
        var high = members.count
        while low < high {
            let middle = (low + high) / 2
            if members[middle].key < key { low = middle + 1 } else { high = middle }
        }
        return low
    }

    package static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
