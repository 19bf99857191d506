import Foundation

/// Fixed-width number formatting without locale surprises.
public func fmt(_ value: Double, _ decimals: Int = 2) -> String {
    String(format: "%.\(decimals)f", value)
}

/// The synthetic rule blocks both benchmarks load: ten rules per block forming a chain (window → results → low
/// → … → a risk decision table → a masking alert), thresholds varying per block, block `b` reading block `b-1`'s
/// conclusion. Names carry a prefix (`syn3.…`), since parameters and derived facts are global across rule-set files.
/// Not clinical content.
public struct SyntheticBlocks: Sendable {
    public static let rulesPerBlock = 10

    /// The name prefix, e.g. `syn` gives `syn0.window`, `syn1.window`, …
    public let name: String

    public init(prefix name: String) {
        self.name = name
    }

    private func prefix(_ block: Int) -> String { "\(name)\(block)" }

    /// The `parameters:`, `derive:` and `rules:` sections of a rule-set file holding `blocks`.
    public func sections(_ blocks: Range<Int>) -> String {
        var out = "parameters:\n\n"
        for b in blocks { out += parameters(b) }
        out += "\nderive:\n"
        for b in blocks { out += derived(b) }
        out += "\nrules:\n"
        for b in blocks { out += rules(b) }
        return out
    }

    func parameters(_ b: Int) -> String {
        let p = prefix(b)
        // Thresholds cycle through plausible ranges so that different blocks reach different conclusions.
        let activeLow = 20 + (b * 7) % 15               // 20-34 pmol/L
        let totalLow = 150 + (b * 13) % 60              // 150-209 ng/L
        let mmaHigh = 0.40 + Double((b * 3) % 8) * 0.05 // 0.40-0.75 umol/L
        let mcvHigh = 96 + (b * 5) % 9                  // 96-104 fL
        let ferritinLow = 15 + (b * 11) % 20            // 15-34 ug/L
        let hbLow = 100 + (b * 3) % 15                  // 100-114 g/L
        let folicHigh = 1 + (b * 5) % 9                 // 1-9 mg/d
        let window = 60 + (b * 10) % 70                 // 60-120 d
        return """
              \(p).window:
                value: \(window) d
                description: Results count when taken in the current pregnancy or within this period.
              \(p).active_low:
                value: \(activeLow) pmol/L
                for: b12.active
                description: Active B12 below this is low.
              \(p).total_low:
                value: \(totalLow) ng/L
                for: b12.total
                description: Total B12 below this is low.
              \(p).mma_high:
                value: \(fmt(mmaHigh)) umol/L
                for: mma
                product_default: true
                description: MMA above this supports deficiency.
              \(p).mcv_high:
                value: \(mcvHigh) fL
                for: mcv
                description: MCV above this is macrocytic.
              \(p).ferritin_low:
                value: \(ferritinLow) ug/L
                for: ferritin
                description: Ferritin below this indicates iron deficiency, which confounds the MCV.
              \(p).hb_low:
                value: \(hbLow) g/L
                for: hb
                description: Haemoglobin below this is anaemia in pregnancy.
              \(p).folic_high:
                value: \(folicHigh) mg/d
                description: Summed daily folic acid above this can mask B12 deficiency.

            """
    }

    func derived(_ b: Int) -> String {
        let p = prefix(b)
        return """
              \(p).window_start:
                type: time
                description: Results taken at or after this time qualify.
              \(p).active_result:
                type: quantity
                unit: pmol/L
                description: The latest qualifying active B12.
              \(p).low_b12:
                type: bool
                default: false
                description: A qualifying B12 result is low, or the previous block concluded so with a risk factor.
              \(p).macrocytosis:
                type: bool
                default: false
                description: Unconfounded macrocytosis.
              \(p).neuro:
                type: bool
                default: false
                description: A compatible neurological symptom in the last six months.
              \(p).risk:
                values: [high, moderate, low, unknown]
                default: unknown
                publish: \(b % 10 == 0 ? "true" : "false")
                description: Synthetic B12 risk classification (decision table).
              \(p).masking:
                type: bool
                default: false
                publish: \(b % 10 == 0 ? "true" : "false")
                description: High-dose folic acid while B12 risk is not low.

            """
    }

    func rules(_ b: Int) -> String {
        let p = prefix(b)
        // Chain into the previous block (possibly in another rule-set file).
        let chain = b == 0 ? "" : "\n        or (\(prefix(b - 1)).low_b12 and exists(metformin, ppi, h2ra, type_2_diabetes, coeliac))"
        let categories = ["deficiency", "anaemia", "monitoring", "note"]
        var out = """
              - id: \(p).window-pregnancy
                description: Results in the current pregnancy, or in the window, whichever reaches further back.
                when: known(pregnancy.start)
                set:
                  \(p).window_start: earliest(pregnancy.start, now - $\(p).window)
                citations: [NICE-NG239]
              - id: \(p).window-recent
                when: "true"
                set:
                  \(p).window_start: now - $\(p).window
                citations: [NICE-NG239]
              - id: \(p).active-result
                when: |
                  known(latest(b12.active, since: \(p).window_start))
                set:
                  \(p).active_result: |
                    latest(b12.active, since: \(p).window_start)
                citations: [NICE-NG239]
              - id: \(p).low
                description: A low qualifying active or total B12.
                when: |
                  \(p).active_result < $\(p).active_low
                    or latest(b12.total, since: \(p).window_start) < $\(p).total_low\(chain)
                set:
                  \(p).low_b12: "true"
                citations: [NICE-NG239]
              - id: \(p).macrocytosis
                when: |
                  latest(mcv, since: \(p).window_start) > $\(p).mcv_high
                    and not exists(thalassaemia_trait, hydroxyurea, methotrexate, azathioprine, mercaptopurine)
                    and latest(ferritin, since: \(p).window_start) >= $\(p).ferritin_low
                set:
                  \(p).macrocytosis: "true"
                citations: [NICE-NG239, BSH-2014]
              - id: \(p).neuro
                when: |
                  exists(paraesthesia, numbness, burning_feet, unsteady_gait, ataxia, romberg_positive, memory_loss,
                         confusion, vision_loss, within: 180 d)
                set:
                  \(p).neuro: "true"
                citations: [NICE-NG239]
              - id: \(p).risk-high
                description: Low B12 with a supporting feature.
                when: |
                  \(p).low_b12
                    and (\(p).neuro or \(p).macrocytosis or latest(mma, since: \(p).window_start) > $\(p).mma_high)
                set:
                  \(p).risk: high
                citations: [NICE-NG239, METZ-1995]

            """
        if b % 4 == 0 {
            // Every fourth block raises an alert from its decision table.
            out += """
                    alert:
                      category: \(categories[(b / 4) % categories.count])
                      severity: warning
                      summary: "Synthetic B12 risk high: active B12 {{\(p).active_result}}"
                      detail: >-
                        Active B12 {{\(p).active_result}}, total B12 {{latest(b12.total, since: \(p).window_start)}},
                        MMA {{latest(mma, since: \(p).window_start)}}; neurological symptoms: {{\(p).neuro}};
                        macrocytosis: {{\(p).macrocytosis}}.
                      recommendation: Review B12 status and treatment (synthetic rule \(p)).
                      citations: [NICE-NG239]

                """
        }
        out += """
              - id: \(p).risk-moderate
                when: |
                  \(p).low_b12 or latest(hb, since: \(p).window_start) < $\(p).hb_low
                    or (diet == "vegan" and exists(metformin, ppi, h2ra, type_2_diabetes, coeliac))
                set:
                  \(p).risk: moderate
                citations: [NICE-NG239, BSH-2014]
              - id: \(p).risk-low
                when: |
                  known(\(p).active_result) or known(latest(b12.total, since: \(p).window_start))
                set:
                  \(p).risk: low
                citations: [NICE-NG239]
              - id: \(p).masking
                description: Summed folic acid above the threshold while B12 risk is not low.
                when: |
                  daily_dose(folic_acid) > $\(p).folic_high and \(p).risk in {"high", "moderate"}
                set:
                  \(p).masking: "true"
                alert:
                  category: folate-masking
                  severity: warning
                  summary: "Folic acid {{daily_dose(folic_acid)}} with synthetic B12 risk {{\(p).risk}}"
                  detail: >-
                    Summed daily folic acid is {{daily_dose(folic_acid)}} (above {{$\(p).folic_high}}); risk {{\(p).risk}};
                    neurological symptoms: {{\(p).neuro}}.
                  recommendation: Check B12 before continuing high-dose folic acid (synthetic rule \(p)).
                  citations: [IOM-1998]

            """
        return out
    }
}

/// A small fixed-seed generator (SplitMix64), so runs generate identical events.
public struct SplitMix {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// RFC 3339 UTC time, `seconds` after 2026-11-20T09:00:00Z, the base time of the benchmarks' generated events.
public func benchmarkTimestamp(_ seconds: Int) -> String {
    let base = 1_795_165_200  // 2026-11-20T09:00:00Z in seconds since 1970
    return Date(timeIntervalSince1970: Double(base + seconds)).formatted(Date.ISO8601FormatStyle())
}
