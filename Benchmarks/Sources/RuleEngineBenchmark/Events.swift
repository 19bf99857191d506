import Foundation

/// The scenario: one pregnant patient with five earlier events over the past five months, then a new lab event.
enum Scenario {
    static let patient = "p-bench-0001"
    static let clinic = "north"

    /// Earlier events, oldest first: booking bloods, a first B12, diabetes and metformin, an active B12, and
    /// high-dose folic acid. Some codes are sent as coded concepts, as integration engines do.
    static let priorEvents: [String] = [
        """
        {"schema":"cobalt.event.v1","id":"ev-0001","patient":"\(patient)","clinic":"\(clinic)","time":"2026-06-12T09:00:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":6.4,"fetuses":1},"diet":"vegan",
         "observations":[{"code":{"system":"loinc","code":"718-7"},"value":128,"unit":"g/L"},
                         {"code":"mcv","value":92,"unit":"fL"}],
         "medications":[{"code":"folic-acid","dose":400,"unit":"ug","per":"day","start":"2026-05-01","product":"folic acid 400 microgram tablets"}]}
        """,
        """
        {"schema":"cobalt.event.v1","id":"ev-0002","patient":"\(patient)","clinic":"\(clinic)","time":"2026-07-17T10:30:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":11.4},
         "observations":[{"code":{"system":"loinc","code":"2132-9"},"value":240,"unit":"ng/L"},
                         {"code":"ferritin","value":52,"unit":"ug/L"},
                         {"code":"folate.serum","value":11,"unit":"ug/L"}]}
        """,
        """
        {"schema":"cobalt.event.v1","id":"ev-0003","patient":"\(patient)","clinic":"\(clinic)","time":"2026-08-21T14:00:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":16.4},
         "conditions":[{"code":{"system":"icd10","code":"E11"},"onset":"2026-08-21"}],
         "medications":[{"code":"metformin","dose":500,"unit":"mg","per":"day","start":"2026-08-21"}],
         "symptoms":[{"code":"fatigue"}]}
        """,
        """
        {"schema":"cobalt.event.v1","id":"ev-0004","patient":"\(patient)","clinic":"\(clinic)","time":"2026-09-25T09:15:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":21.4},
         "observations":[{"code":"b12.active","value":38,"unit":"pmol/L"},
                         {"code":"hb","value":119,"unit":"g/L"},
                         {"code":"mcv","value":96,"unit":"fL"}],
         "medications":[{"code":"metformin","dose":1000,"unit":"mg","per":"day","start":"2026-08-21"}]}
        """,
        """
        {"schema":"cobalt.event.v1","id":"ev-0005","patient":"\(patient)","clinic":"\(clinic)","time":"2026-10-23T11:00:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":25.4},
         "observations":[{"code":"platelets","value":240,"unit":"10*9/L"}],
         "medications":[{"code":"folic-acid","dose":5,"unit":"mg","per":"day","start":"2026-10-23","product":"folic acid 5 mg tablets"}]}
        """,
    ]

    /// The measured event: a full lab panel (active B12, total B12 in pmol/L, MMA in nmol/L, Hb, MCV, ferritin,
    /// folate in nmol/L — three of them need unit conversion), the current medication list (two folic-acid products
    /// and metformin), a symptom, pregnancy status and diet.
    static let event = """
        {"schema":"cobalt.event.v1","id":"ev-0006","patient":"\(patient)","clinic":"\(clinic)","time":"2026-11-20T09:00:00Z",
         "pregnancy":{"status":"pregnant","gestation_weeks":29.4,"fetuses":1},
         "diet":"vegan",
         "observations":[
           {"code":"b12.active","value":18,"unit":"pmol/L"},
           {"code":"b12.total","value":145,"unit":"pmol/L"},
           {"code":"mma","value":520,"unit":"nmol/L"},
           {"code":"hb","value":104,"unit":"g/L"},
           {"code":"mcv","value":101,"unit":"fL"},
           {"code":"ferritin","value":28,"unit":"ug/L"},
           {"code":"folate.serum","value":22,"unit":"nmol/L"}
         ],
         "medications":[
           {"code":"folic-acid","dose":5,"unit":"mg","per":"day","start":"2026-10-23","product":"folic acid 5 mg tablets"},
           {"code":"folic-acid","dose":400,"unit":"ug","per":"day","start":"2026-05-01","product":"pregnancy multivitamin"},
           {"code":"metformin","dose":1000,"unit":"mg","per":"day","start":"2026-08-21","route":"oral"}
         ],
         "symptoms":[{"code":"paraesthesia","onset":"2026-11-10"}]}
        """
}
