#include "startup.h"

#include <algorithm>
#include <thread>

#include "avPlugin.h"
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

/* Whether clamd answers PING at candidate `c`, and if not, why (and whether for good). */
ProbeOutcome probe_candidate(const Config &base, const Candidate &c, Clock::time_point deadline)
{
    Config config = candidate_config(base, c);
    std::string error;
    if (!resolve_endpoints(config, kCandidateConnect, error))
        return {ProbeResult::Permanent, error};
    Session session;
    if (!session.open(config, std::min<Clock::duration>(kCandidateConnect, time_left(deadline)),
                      error)) {
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

/* Sleeps a second between rounds while StartupTimeout lasts. */
bool wait_a_second(Clock::time_point deadline)
{
    if (Clock::now() + std::chrono::seconds(1) >= deadline)
        return false;
    std::this_thread::sleep_for(std::chrono::seconds(1));
    return true;
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
        "that answered PING" + passed + "; set LocalSocket, or Address and Port, to choose";
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
 * Warns when clamd answers a zip nested past MaxRecursion with OK (AlertExceedsMax
 * no): it would also call a file over MaxFileSize or MaxScanSize clean, and a file
 * passed with FILDES meets those instead of StreamMaxLength.
 */
void check_alert_exceeds_max(Session &session, const Config &config)
{
    const std::vector<unsigned char> probe = nested_zip(kLimitsProbeDepth);
    StreamResult r = session.instream_bytes(probe.data(), static_cast<std::uint32_t>(probe.size()),
                                            std::min<Clock::duration>(config.scan_timeout,
                                                                      kProbeTimeout));
    if (r.kind != StreamResult::Kind::Reply) {
        avc_log_debug("avir_clam: could not check clamd at %s for AlertExceedsMax: %s",
                      config.where().c_str(), r.error.empty() ? "no reply" : r.error.c_str());
        return;
    }
    ScanReply reply = parse_scan_reply(r.reply, r.request_id);
    if (reply.status == ScanStatus::Clean)
        avc_log_warning("avir_clam: clamd at %s reports a file over its limits as clean (a zip "
                        "nested %d deep came back OK): set AlertExceedsMax yes in clamd.conf "
                        "(then restart clamd) so that such a file is reported as not scannable; "
                        "and MaxFileSize equal to StreamMaxLength, since a file passed over the "
                        "UNIX socket (FdPass) meets MaxFileSize instead",
                        config.where().c_str(), kLimitsProbeDepth);
    else
        avc_log_debug("avir_clam: clamd at %s reports files over its limits (\"%s\")",
                      config.where().c_str(), printable_excerpt(reply.detail).c_str());
}

/* PING, VERSION and the configuration probes on a fresh session to one clamd. */
bool check_clamd(Session &session, const Config &config, std::string &error)
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
    check_alert_exceeds_max(session, config);
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
    Discovery d = discover(
        candidates, [&](const Candidate &c) { return probe_candidate(config, c, deadline); },
        [&] { return wait_a_second(deadline); });
    if (d.chosen < 0) {
        error = "no clamd address set, and none found in StartupTimeout=" +
                std::to_string(config.startup_timeout.count()) + " s: " +
                discovery_summary(candidates, d) +
                "; is clamd running? Else set LocalSocket, or Address and Port, as in clamd.conf";
        return false;
    }
    log_choice(candidates, d);
    config = candidate_config(config, candidates[static_cast<std::size_t>(d.chosen)]);
    return true;
}

bool probe_clamd(const Config &config, std::string &error)
{
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    Session session;
    for (;;) {
        if (session.open(config, time_left(deadline), error))
            break;
        if (session.failed_for_good())
            return false; /* waiting would not help: say why now */
        if (Clock::now() + std::chrono::seconds(1) >= deadline) {
            error += " (tried for " + std::to_string(config.startup_timeout.count()) +
                     " s, StartupTimeout)";
            return false;
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    return check_clamd(session, config, error);
}

bool probe_pool(const std::vector<Config> &instances, std::vector<std::string> &failures,
                std::string &error)
{
    const Clock::time_point deadline = Clock::now() + instances.front().startup_timeout;
    failures.assign(instances.size(), "not tried");
    std::vector<bool> for_good(instances.size(), false);
    for (;;) {
        bool any = false, all_for_good = true;
        for (std::size_t i = 0; i < instances.size(); i++) {
            if (for_good[i])
                continue;
            Session session;
            std::string why;
            if (session.open(instances[i],
                             std::min<Clock::duration>(kCandidateConnect, time_left(deadline)),
                             why) &&
                check_clamd(session, instances[i], why)) {
                failures[i].clear();
                any = true;
                continue;
            }
            for_good[i] = session.failed_for_good();
            all_for_good = all_for_good && for_good[i];
            failures[i] = session.failure_brief().empty() ? why : session.failure_brief();
        }
        if (any)
            return true;
        if (all_for_good || !wait_a_second(deadline))
            break;
    }
    error = "no clamd instance of the pool answered within StartupTimeout=" +
            std::to_string(instances.front().startup_timeout.count()) + " s:";
    for (std::size_t i = 0; i < instances.size(); i++)
        error += (i ? "; " : " ") + instances[i].where() + ": " + failures[i];
    return false;
}

} // namespace avclam
