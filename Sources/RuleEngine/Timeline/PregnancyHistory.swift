/// Pregnancy episodes reconstructed from status reports known at evaluation time, so that the status *at the
/// time a sample was taken* can be answered even when the report that dates the pregnancy came later
/// (a sample from late pregnancy evaluated postpartum).
package struct PregnancyHistory: Sendable {
    package enum Status: String, Sendable { case pregnant, postpartum, notPregnant = "not-pregnant" }

    package struct Episode: Sendable {
        /// Estimated start (gestational age 0), from the latest "pregnant" report of the episode.
        package var start: Double?
        package var delivery: Double?
        package var breastfeeding: Bool?
        package var fetuses: Int?
        package var endedAt: Double?
        package var provenance: Provenance
    }

    package struct State: Sendable {
        package var status: Status
        package var gestationWeeks: Double?
        package var episode: Episode?

        package var trimester: Int? {
            guard status == .pregnant, let weeks = gestationWeeks else { return nil }
            return weeks < 14 ? 1 : weeks < 28 ? 2 : 3
        }
    }

    private static let week = 604_800.0
    /// Beyond this gestational age with no delivery reported, a pregnancy report is treated as stale.
    private static let maximumGestation = 45.0 * week
    /// Assumed length of a pregnancy known only by its delivery date.
    private static let termLength = 40.0 * week

    package private(set) var episodes: [Episode] = []
    private var notPregnantReports: [Double] = []

    /// Builds the history from reports made at or before `now`.
    package init(_ records: [PregnancyRecord], now: Double) {
        for record in records where record.time <= now { add(record) }
    }

    /// Adds the next report. Reports must be added in time order (as ``PatientTimeline`` keeps them): adding them
    /// one at a time then builds the same history as ``init(_:now:)`` does from all of them.
    package mutating func add(_ record: PregnancyRecord) {
        switch record.status {
        case "pregnant":
            let start = record.time - (record.gestationWeeks ?? 0) * Self.week
            if var current = episodes.last, current.endedAt == nil, current.delivery.map({ start < $0 }) ?? true {
                current.start = start
                current.fetuses = record.fetuses ?? current.fetuses
                current.provenance = record.provenance
                episodes[episodes.count - 1] = current
            } else {
                episodes.append(Episode(start: start, fetuses: record.fetuses, provenance: record.provenance))
            }
        case "postpartum":
            let delivery = record.deliveryDate ?? record.time
            if var current = episodes.last, current.endedAt == nil,
                current.delivery == nil || current.delivery == delivery,
                current.start.map({ $0 <= delivery }) ?? true
            {
                current.delivery = delivery
                current.breastfeeding = record.breastfeeding ?? current.breastfeeding
                current.provenance = record.provenance
                episodes[episodes.count - 1] = current
            } else {
                episodes.append(Episode(delivery: delivery, breastfeeding: record.breastfeeding, provenance: record.provenance))
            }
        default:
            notPregnantReports.append(record.time)
            if var current = episodes.last, current.endedAt == nil {
                current.endedAt = record.time
                episodes[episodes.count - 1] = current
            }
        }
    }

    /// The pregnancy state at time `t`, or `nil` when nothing known covers it.
    package func state(at t: Double) -> State? {
        for episode in episodes.reversed() {
            let start = episode.start ?? (episode.delivery.map { $0 - Self.termLength } ?? .infinity)
            if let end = episode.endedAt, t >= end { break }
            if let delivery = episode.delivery, t >= delivery {
                return State(status: .postpartum, gestationWeeks: nil, episode: episode)
            }
            if t >= start {
                if episode.delivery == nil, t - start > Self.maximumGestation { return nil }
                return State(status: .pregnant, gestationWeeks: (t - start) / Self.week, episode: episode)
            }
        }
        if notPregnantReports.contains(where: { $0 <= t }) {
            return State(status: .notPregnant, gestationWeeks: nil, episode: nil)
        }
        return nil
    }
}
