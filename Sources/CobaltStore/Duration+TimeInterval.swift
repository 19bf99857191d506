extension Duration {
    /// The whole duration in seconds (a `TimeInterval`, for Foundation's waits and for metrics in seconds).
    package var timeInterval: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
