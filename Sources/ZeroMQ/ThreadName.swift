import Foundation

/// Names the calling thread for the kernel (`top -H`, `perf`, `/proc/thread-self/comm`) and for Foundation.
///
/// Call it from inside the thread. Foundation's `Thread.current.name = …` alone does not always reach the kernel
/// on Linux: a thread started with `Thread { … }` can run before its creator has recorded the thread's handle,
/// and the name is then kept only in the `Thread` object (seen here as a rare test failure: the loop thread kept
/// its creator's name, `…oot.default-qos`). So the kernel's name is also written directly; it keeps 15 bytes.
public func nameCurrentThread(_ name: String) {
    Thread.current.name = name
    #if os(Linux)
    try? String(decoding: name.utf8.prefix(15), as: UTF8.self).write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
    #endif
}
