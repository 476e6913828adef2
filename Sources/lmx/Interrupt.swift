import Glibc

/// Ctrl-C (SIGINT), and SIGTERM for `lmx train`, set a flag that the running work polls.
enum Interrupt {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func clear() { flag = 0 }

    /// `lmx train`: SIGINT and SIGTERM ask the run to stop after the current step, checkpointed.
    static func install() {
        for signal in [SIGINT, SIGTERM] {
            Glibc.signal(signal) { _ in Interrupt.flag = 1 }
        }
    }

    /// `lmx chat`: SIGINT sets the flag (no SA_RESTART: a blocking call of the thread that
    /// receives it returns EINTR); the prompt's reader and the reply poll it.
    static func installInterruptingReads() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in Interrupt.flag = 1 }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
    }
}
