#include "startup.h"

#include <algorithm>
#include <thread>

#include "avPlugin.h"
#include "clamd_conf.h"
#include "discovery.h"
#include "encrypted_probe.h"
#include "limits_probe.h"
#include "reply_parser.h"
#include "deadline.h"
#include "session.h"

namespace avclam {

namespace {

/* A connect to a local socket or to loopback succeeds or fails at once. */
constexpr auto kCandidateConnect = std::chrono::seconds(2);
constexpr auto kLastTryConnect = std::chrono::milliseconds(500);
/* A configured clamd may be on another machine: a connect may take a while. */
constexpr auto kAttemptConnect = std::chrono::seconds(5);
/* The encrypted-zip probe is 179 bytes: clamd answers it in milliseconds. */
constexpr auto kProbeTimeout = std::chrono::seconds(10);

using netplugin::time_left;

Config candidate_config(const Config &base, const Candidate &c)
{
    Config config = base;
    config.local_socket = c.local_socket ? c.local_socket : "";
    if (!c.local_socket) {
        config.address = c.address;
        config.port = c.port;
    }
    return config;
}

/*
 * At most kCandidateConnect, less when StartupTimeout ends sooner, but never so
 * little that the last try at the deadline fails as "timed out" instead of
 * saying what is there (a connect on this machine is immediate).
 */
Clock::duration candidate_connect_timeout(Clock::time_point deadline)
{
    return std::min<Clock::duration>(
        kCandidateConnect, std::max<Clock::duration>(time_left(deadline), kLastTryConnect));
}

/*
 * One connection attempt to a configured clamd: short enough that a host that
 * never answers (a SYN dropped by a firewall) still lets the wait speak every
 * few seconds, and is tried again.
 */
Clock::duration attempt_connect_timeout(Clock::time_point deadline)
{
    return std::min<Clock::duration>(
        kAttemptConnect, std::max<Clock::duration>(time_left(deadline), kLastTryConnect));
}

/* Whether clamd answers PING at candidate `c`, and if not, why (and whether for good). */
ProbeOutcome probe_candidate(const Config &base, const Candidate &c, Clock::time_point deadline)
{
    Config config = candidate_config(base, c);
    std::string error;
    if (!resolve_endpoints(config, kCandidateConnect, error))
        return {ProbeResult::Permanent, error};
    Session session;
    if (!session.open(config, candidate_connect_timeout(deadline), error)) {
        if (!session.failed_for_good())
            return {ProbeResult::Transient, session.failure_brief()};
        /* Likely the clamd meant, unusable as it is: the whole hint goes to the log. */
        avc_log_warning("avir_clam: looking for clamd: %s", error.c_str());
        return {ProbeResult::Permanent, session.failure_brief()};
    }
    /* Connected: this is clamd's socket. A socket-activated clamd may take its time. */
    if (!session.ping(std::max<Clock::duration>(time_left(deadline), std::chrono::seconds(1)),
                      error))
        return {ProbeResult::Transient, "did not answer PING: " + error};
    return {ProbeResult::Answered, "answered PING"};
}

/* Sleeps a second between rounds, the last one up to the deadline: false once it passed. */
bool wait_a_second(Clock::time_point deadline)
{
    const Clock::duration left = time_left(deadline);
    if (left <= Clock::duration::zero())
        return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(left, std::chrono::seconds(1)));
    return true;
}

/* Whole seconds since `start`, rounded, for messages that say how long was tried. */
long long seconds_since(Clock::time_point start)
{
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    return (ms + 500) / 1000;
}

/*
 * A wait that speaks: plugin_init may wait StartupTimeout (up to 100 s) for
 * clamd, and an administrator watching the log must see what it waits for at
 * once and then at least every kWaitReportEvery.
 */
class WaitReporter {
public:
    WaitReporter(std::string what, std::chrono::seconds timeout)
        : what_(std::move(what)), timeout_(timeout), start_(Clock::now())
    {
    }

    /* After a failed try: logs `why` now if it is the first, or kWaitReportEvery passed. */
    void failed(const std::string &why)
    {
        const Clock::time_point now = Clock::now();
        if (reported_ && now - last_ < kWaitReportEvery)
            return;
        reported_ = true;
        last_ = now;
        avc_log_warning("avir_clam: waiting for %s: %s; %lld s of StartupTimeout=%lld s so far, "
                        "trying again every second",
                        what_.c_str(), why.c_str(), seconds_since(start_),
                        static_cast<long long>(timeout_.count()));
    }

    Clock::time_point start() const { return start_; }

private:
    static constexpr auto kWaitReportEvery = std::chrono::seconds(5);
    std::string what_;
    std::chrono::seconds timeout_;
    Clock::time_point start_;
    Clock::time_point last_{};
    bool reported_ = false;
};

/* The size over which clamd at `config` would call a file clean, unless it alerts. */
void learn_size_limit(Config &config)
{
    config.clamd_limit =
        read_size_limit(config.clamd_conf, config.local_socket, config.address, config.port);
    avc_log_debug("avir_clam: clamd at %s skips a file over %llu bytes (%s)",
                  config.where().c_str(),
                  static_cast<unsigned long long>(config.clamd_limit.bytes),
                  config.clamd_limit.origin.c_str());
}

void log_choice(const std::vector<Candidate> &candidates, const Discovery &d)
{
    const Candidate &c = candidates[static_cast<std::size_t>(d.chosen)];
    std::string passed;
    for (std::size_t i = 0; i < static_cast<std::size_t>(d.chosen); i++)
        if (d.outcomes[i].result == ProbeResult::Permanent)
            passed += (passed.empty() ? " (passed over " : "; ") + candidate_where(candidates[i]) +
                      ": " + d.outcomes[i].detail;
    if (!passed.empty())
        passed += ")";
    const std::string text =
        std::string("avir_clam: no clamd address set (Address ") + kDefaultAddress + ", Port " +
        kDefaultPort + ", LocalSocket empty): using clamd at " + candidate_where(c) + " (" + c.origin + "), the first stock place "
                                                                                                        "that answered PING" +
        passed + "; set LocalSocket, or Address and Port, to choose";
    if (passed.empty())
        avc_log_debug("%s", text.c_str());
    else
        avc_log_warning("%s", text.c_str());
}

/* Warns when clamd answers a password-protected zip with OK (AlertEncrypted no). */
void check_alert_encrypted(Session &session, const Config &config)
{
    StreamResult r = session.instream_bytes(kEncryptedProbeZip, sizeof kEncryptedProbeZip,
                                            std::min<Clock::duration>(config.scan_timeout,
                                                                      kProbeTimeout));
    if (r.kind != StreamResult::Kind::Reply) {
        avc_log_debug("avir_clam: could not check clamd at %s for AlertEncrypted: %s",
                      config.where().c_str(), r.error.empty() ? "no reply" : r.error.c_str());
        return;
    }
    ScanReply reply = parse_scan_reply(r.reply, r.request_id);
    if (reply.status == ScanStatus::Clean)
        avc_log_warning("avir_clam: clamd at %s passes encrypted archives as clean: set "
                        "AlertEncrypted yes in clamd.conf (then restart clamd) so that a "
                        "password-protected archive is reported as not scannable instead "
                        "of clean",
                        config.where().c_str());
    else
        avc_log_debug("avir_clam: clamd at %s reports encrypted archives (\"%s\")",
                      config.where().c_str(), printable_excerpt(reply.detail).c_str());
}

/*
 * Whether clamd reports a zip nested past MaxRecursion (AlertExceedsMax yes). When
 * it does not, it would also call a file over MaxFileSize or MaxScanSize clean: the
 * scanner then reports such a file as not scannable itself (config.clamd_limit),
 * and what cannot be told apart (archives' contents over a limit) is logged once.
 * No answer counts as "does not": a false IMPOSSIBLE is better than a false OK.
 */
bool check_alert_exceeds_max(Session &session, const Config &config)
{
    const std::vector<unsigned char> probe = nested_zip(kLimitsProbeDepth);
    StreamResult r = session.instream_bytes(probe.data(), static_cast<std::uint32_t>(probe.size()),
                                            std::min<Clock::duration>(config.scan_timeout,
                                                                      kProbeTimeout));
    ScanReply reply;
    if (r.kind == StreamResult::Kind::Reply)
        reply = parse_scan_reply(r.reply, r.request_id);
    const bool alerts = r.kind == StreamResult::Kind::Reply &&
                        reply.status != ScanStatus::Clean &&
                        reply.detail.find("Heuristics.Limits.Exceeded") != std::string::npos;
    if (alerts) {
        avc_log_debug("avir_clam: clamd at %s reports files over its limits (\"%s\"): its "
                      "answer is trusted, no size limit of the plugin's own but MaxFileSize",
                      config.where().c_str(), printable_excerpt(reply.detail).c_str());
        return true;
    }
    const std::string seen =
        r.kind != StreamResult::Kind::Reply
            ? "could not be checked (" +
                  (r.error.empty() ? std::string("no reply") : r.error) +
                  "): taken as AlertExceedsMax no"
            : "a zip nested " + std::to_string(kLimitsProbeDepth) + " deep came back " +
                  (reply.status == ScanStatus::Clean
                       ? std::string("OK")
                       : "\"" + printable_excerpt(reply.detail, 40) + "\"") +
                  ": AlertExceedsMax no";
    /* Two lines: a log line holds about 500 characters. */
    const std::string action =
        config.clamd_limit.bytes == 0
            ? "it has no file size limit (" + config.clamd_limit.origin + ")"
            : "a file over " + std::to_string(config.clamd_limit.bytes) + " bytes (" +
                  config.clamd_limit.origin + ") is reported as not scannable without being sent";
    avc_log_warning("avir_clam: clamd at %s reports a file over its limits as clean (%s): %s",
                    config.where().c_str(), seen.c_str(), action.c_str());
    avc_log_warning("avir_clam: clamd at %s: an archive whose contents exceed MaxScanSize, "
                    "MaxFiles, MaxRecursion or another limit still comes back clean, which the "
                    "plugin cannot tell: set AlertExceedsMax yes in clamd.conf (then restart "
                    "clamd) so that clamd reports every such file itself",
                    config.where().c_str());
    return false;
}

/* PING, VERSION and the configuration probes on a fresh session to one clamd. */
bool check_clamd(Session &session, Config &config, std::string &error)
{
    std::string why;
    if (!session.ping(config.startup_timeout, why)) {
        error = "clamd at " + config.where() + " did not answer PING: " + why;
        return false;
    }
    ClamdVersion version;
    if (!session.version(config.startup_timeout, version, why)) {
        error = "clamd at " + config.where() + " did not answer VERSION: " + why;
        return false;
    }
    if (!version_supported(version)) {
        error = "clamd at " + config.where() + " is " + version.text +
                "; this plugin needs ClamAV 0.95 or newer";
        return false;
    }
    avc_log_debug("avir_clam: connected to clamd at %s: %s", config.where().c_str(),
                  version.text.c_str());
    check_alert_encrypted(session, config);
    config.clamd_alerts_on_limits = check_alert_exceeds_max(session, config);
    session.close();
    return true;
}

} // namespace

bool locate_clamd(Config &config, std::string &error)
{
    if (!config.discover)
        return true;
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    const std::vector<Candidate> candidates = default_candidates();
    WaitReporter reporter("clamd at the stock places (no clamd address set)",
                          config.startup_timeout);
    std::string round; /* what each place did in the round that just failed */
    Discovery d = discover(
        candidates,
        [&](const Candidate &c) {
            ProbeOutcome o = probe_candidate(config, c, deadline);
            round += (round.empty() ? "" : "; ") + candidate_where(c) + ": " + o.detail;
            return o;
        },
        [&] {
            reporter.failed(round);
            round.clear();
            return wait_a_second(deadline);
        });
    if (d.chosen < 0) {
        const bool for_good = d.gave_up_for_good;
        error = std::string("no clamd address set, and ") +
                (for_good ? "a stock place holds a clamd socket this process cannot use"
                          : "none found in StartupTimeout=" +
                                std::to_string(config.startup_timeout.count()) + " s (tried for " +
                                std::to_string(seconds_since(reporter.start())) + " s)") +
                ": " + discovery_summary(candidates, d) +
                (for_good ? "; see the warning before this one for what to change"
                          : "; is clamd running? Else set LocalSocket, or Address and Port, as "
                            "in clamd.conf");
        return false;
    }
    log_choice(candidates, d);
    config = candidate_config(config, candidates[static_cast<std::size_t>(d.chosen)]);
    return true;
}

bool probe_clamd(Config &config, std::string &error)
{
    learn_size_limit(config);
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    WaitReporter reporter("clamd at " + config.where(), config.startup_timeout);
    Session session;
    for (;;) {
        if (session.open(config, attempt_connect_timeout(deadline), error))
            break;
        if (session.failed_for_good())
            return false; /* waiting would not help: say why now */
        reporter.failed(error);
        if (!wait_a_second(deadline)) {
            error += " (tried for " + std::to_string(seconds_since(reporter.start())) +
                     " s, StartupTimeout=" + std::to_string(config.startup_timeout.count()) +
                     " s)";
            return false;
        }
    }
    return check_clamd(session, config, error);
}

bool probe_pool(std::vector<Config> &instances, std::vector<std::string> &failures,
                std::string &error)
{
    for (Config &config : instances)
        learn_size_limit(config);
    const Clock::time_point deadline = Clock::now() + instances.front().startup_timeout;
    WaitReporter reporter("the clamd instances of the pool", instances.front().startup_timeout);
    failures.assign(instances.size(), "not tried");
    std::vector<bool> for_good(instances.size(), false);
    for (;;) {
        bool any = false, all_for_good = true;
        for (std::size_t i = 0; i < instances.size(); i++) {
            if (for_good[i])
                continue;
            Session session;
            std::string why;
            if (session.open(instances[i], candidate_connect_timeout(deadline), why) &&
                check_clamd(session, instances[i], why)) {
                failures[i].clear();
                any = true;
                continue;
            }
            for_good[i] = session.failed_for_good();
            if (for_good[i]) /* not tried again: the whole hint now, while others are waited for */
                avc_log_warning("avir_clam: clamd at %s of the pool cannot be used: %s",
                                instances[i].where().c_str(), why.c_str());
            all_for_good = all_for_good && for_good[i];
            failures[i] = session.failure_brief().empty() ? why : session.failure_brief();
        }
        if (any)
            return true;
        if (all_for_good)
            break;
        std::string why;
        for (std::size_t i = 0; i < instances.size(); i++)
            why += (i ? "; " : "") + instances[i].where() + ": " + failures[i];
        reporter.failed(why);
        if (!wait_a_second(deadline))
            break;
    }
    error = "no clamd instance of the pool answered within StartupTimeout=" +
            std::to_string(instances.front().startup_timeout.count()) + " s (tried for " +
            std::to_string(seconds_since(reporter.start())) + " s):";
    for (std::size_t i = 0; i < instances.size(); i++)
        error += (i ? "; " : " ") + instances[i].where() + ": " + failures[i];
    return false;
}

} // namespace avclam
