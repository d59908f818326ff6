#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import SessionService

/// cognigy-session: wiring, command line and signals.
let version = "0.1.0"

func printHelp() {
    var out = """
        cognigy-session \(version): keeps a Cognigy.AI conversation's context across channels.

        Usage: cognigy-session [--config FILE] [--check-config] [--version] [--help]

          --config FILE    read configuration from FILE (JSON object of VARIABLE: value)
                           instead of CONFIG_FILE or ./config/default.json
          --check-config   validate the configuration, print it (secrets masked), exit
          --generate-key ID  print a new ENCRYPTION_KEYS entry (ID:base64 of 32 random bytes)
          --version        print the version and exit
          --help           this text

        Configuration: defaults < config file < environment. Variables (default):

        """
    for v in ServiceConfiguration.variables {
        let name = v.name.padding(toLength: 28, withPad: " ", startingAt: 0)
        out += "  \(name)\(v.help)\(v.defaultValue.map { " (default: \($0))" } ?? "")\n"
    }
    print(out, terminator: "")
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

var configFile: String?
var checkOnly = false
var arguments = CommandLine.arguments.dropFirst()
while let arg = arguments.popFirst() {
    switch arg {
    case "--help", "-h": printHelp(); exit(0)
    case "--version": print("cognigy-session \(version)"); exit(0)
    case "--check-config": checkOnly = true
    case "--generate-key":
        // One line on stdout: a new `ID:base64(32 random bytes)` entry for ENCRYPTION_KEYS.
        guard let id = arguments.popFirst() else { fail("--generate-key needs a key id") }
        do { print(try generateKeyLine(id: id)) } catch { fail("--generate-key: \(error)") }
        exit(0)
    case "--config":
        guard let file = arguments.popFirst() else { fail("--config needs a file path") }
        configFile = file
    case let other where other.hasPrefix("--config="):
        configFile = String(other.dropFirst("--config=".count))
    default:
        fail("unknown argument '\(arg)' (see --help)")
    }
}

let configuration: ServiceConfiguration
do {
    configuration = try ServiceConfiguration.load(environment: ProcessInfo.processInfo.environment, configFile: configFile)
} catch {
    fail("\(error)")
}
if checkOnly {
    print(configuration.describe())
    exit(0)
}

// Block the stop signals in every thread (threads inherit the mask), then wait for them
// here with sigwait: no async-signal-safety concerns, no handler racing the server.
signal(SIGPIPE, SIG_IGN)
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

let logger = Logger(level: configuration.logLevel)
let app: ServiceApp
do {
    app = try ServiceApp(configuration: configuration, logger: logger)
    try app.start()
} catch {
    fail("cognigy-session: cannot start: \(error)")
}

var received: Int32 = 0
sigwait(&stopSignals, &received)
logger.info("stopping: draining in-flight requests", [("signal", .int(Int64(received)))])
let drained = app.stop()
if drained {
    logger.info("stopped")
} else {
    logger.warn("drain timeout reached with connections still open; exiting")
}
exit(0)
