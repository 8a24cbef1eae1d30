#include "startup.h"

#include <algorithm>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include "avPlugin.h"
#include "deadline.h"
#include "resolve.h"
#include "session.h"

namespace avicap {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

using netplugin::time_left;

/* plugin_init logs what it waits for at least this often. */
constexpr Clock::duration kWaitLogEvery = std::chrono::seconds(10);
/* The longest step of that wait (a connection attempt, an OPTIONS answer), so that
   a log line can come between two steps; retried until StartupTimeout. */
constexpr Clock::duration kWaitStep = std::chrono::seconds(8);

/* Fills server.endpoints within `timeout`; false with a sentence when that fails. */
bool resolve(Server &server, Clock::duration timeout, std::string &error)
{
    server.endpoints.clear();
    error_code ec;
    switch (netplugin::resolve_tcp(server.host, server.port, timeout, server.endpoints, ec)) {
    case netplugin::Resolution::TimedOut:
        error = "cannot resolve the ICAP server \"" + printable_excerpt(server.host) +
                "\": timed out; check the Server option and the DNS";
        return false;
    case netplugin::Resolution::Failed:
        error = "cannot resolve the ICAP server \"" + printable_excerpt(server.host) + "\": " +
                ec.message() + "; check the Server option";
        return false;
    case netplugin::Resolution::Found:
        break;
    }
    return !server.endpoints.empty();
}

enum class Probe { Ok,
                   Retry,
                   Fail };

/* One OPTIONS round; on Retry or Fail, `error` says why. */
Probe ask_options(Server &server, const Config &config, Clock::time_point deadline,
                  std::string &error)
{
    Session session;
    Clock::duration connect = std::min<Clock::duration>(
        std::min<Clock::duration>(config.connect_timeout, time_left(deadline)), kWaitStep);
    bool permanent = false;
    if (!session.open(server, connect, error, permanent))
        return permanent ? Probe::Fail : Probe::Retry; /* refused or silent: c-icap may be starting */
    Exchange x = session.options(
        server, std::min<Clock::duration>(
                    std::max<Clock::duration>(time_left(deadline), std::chrono::seconds(1)),
                    kWaitStep));
    session.close();
    const std::string where = "ICAP server " + server.uri();
    switch (x.kind) {
    case Exchange::Kind::Answer:
        break;
    case Exchange::Kind::Timeout:
        error = where + " accepted the connection but did not answer OPTIONS";
        return Probe::Retry;
    case Exchange::Kind::Protocol:
        error = where + " did not answer OPTIONS in ICAP: " + x.error +
                "; is Port the ICAP port (1344)?";
        return Probe::Fail;
    default:
        error = where + " dropped the OPTIONS request: " + x.error;
        return Probe::Retry;
    }
    ServiceOptions options;
    if (!parse_options(x.response, options)) {
        error = where + " answered OPTIONS with ICAP " + std::to_string(x.response.status) + " " +
                x.response.reason +
                (x.response.status == 404 ? "; no such service: check the Service option "
                                            "(c-icap with virus_scan: avscan)"
                                          : std::string());
        /* A server that is starting answers 503; anything else will not change. */
        return x.response.status == 503 ? Probe::Retry : Probe::Fail;
    }
    if (!options.respmod) {
        error = where + " does not offer RESPMOD (Methods: " +
                printable_excerpt(x.response.header("Methods") ? *x.response.header("Methods") : "") +
                "); an antivirus service such as c-icap's virus_scan (avscan) does";
        return Probe::Fail;
    }
    server.options = options;
    decide_auto_scan_limit(server);
    server.preview = options.preview < 0       ? -1
                     : config.preview_size < 0 ? options.preview
                                               : std::min(config.preview_size, options.preview);
    return Probe::Ok;
}

void log_server(const Server &server)
{
    const std::string limit =
        server.scan_limit ? std::to_string(server.scan_limit) + " bytes" : std::string("any size");
    avc_log_debug("avir_icap: ICAP server %s: %s, ISTag %s, preview %ld bytes (server: %ld), "
                  "204 %s, scans files up to %s (%s)",
                  server.uri().c_str(), server.options.service.c_str(),
                  server.options.istag.c_str(), server.preview, server.options.preview,
                  server.options.allow_204 ? "allowed" : "not offered", limit.c_str(),
                  server.scan_limit_source.c_str());
}

long long seconds_since(Clock::time_point start)
{
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start).count());
}

/*
 * plugin_init's wait speaks: what it waits for, at its first failure and then at
 * least every 10 s, so that an administrator watching the log knows why avserver
 * has not started scanning yet. Called between two attempts: it logs when the
 * next attempt, as long as the last one, would end more than 10 s after the last line.
 */
class WaitLog {
public:
    explicit WaitLog(const Config &config)
        : config_(config), start_(Clock::now()), round_start_(start_) {}

    void still_waiting(const std::string &why)
    {
        const Clock::time_point now = Clock::now();
        const Clock::duration round = now - round_start_ + std::chrono::seconds(1); /* + the pause */
        round_start_ = now + std::chrono::seconds(1);
        if (logged_ && now - last_ + round < kWaitLogEvery)
            return;
        logged_ = true;
        last_ = now;
        avc_log_warning("avir_icap: waiting for the ICAP server (%lld of StartupTimeout=%lld s): "
                        "%s; is c-icap running, and is its service loaded?",
                        seconds_since(start_),
                        static_cast<long long>(config_.startup_timeout.count()), why.c_str());
    }

    /* " (tried for 9 s of StartupTimeout=10 s)": the time it really waited. */
    std::string tried() const
    {
        return " (tried for " + std::to_string(seconds_since(start_)) + " s of StartupTimeout=" +
               std::to_string(config_.startup_timeout.count()) + " s)";
    }

private:
    const Config &config_;
    Clock::time_point start_;
    Clock::time_point round_start_; /* when the attempt now ending began */
    Clock::time_point last_{};
    bool logged_ = false;
};

/* A pool: every server each second until at least one answers; the others start down. */
bool probe_pool(Config &config, std::string &error)
{
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    const std::size_t n = config.servers.size();
    for (Server &server : config.servers)
        if (!resolve(server, std::min<Clock::duration>(config.startup_timeout, std::chrono::seconds(30)),
                     error))
            return false;
    std::vector<std::string> why(n, "not tried");
    std::vector<bool> ok(n, false), for_good(n, false);
    WaitLog wait(config);
    for (;;) {
        bool any = false, all_for_good = true;
        for (std::size_t i = 0; i < n; i++) {
            if (for_good[i])
                continue;
            Probe p = ask_options(config.servers[i], config, deadline, why[i]);
            ok[i] = p == Probe::Ok;
            for_good[i] = p == Probe::Fail;
            any = any || ok[i];
            all_for_good = all_for_good && for_good[i];
            if (ok[i]) {
                log_server(config.servers[i]);
                for_good[i] = true; /* done with it */
            }
        }
        if (any)
            break;
        if (all_for_good || Clock::now() + std::chrono::seconds(1) >= deadline) {
            error = all_for_good ? std::string("no ICAP server of the pool can be used:")
                                 : "no ICAP server of the pool answered OPTIONS" + wait.tried() + ":";
            for (std::size_t i = 0; i < n; i++)
                error += (i ? "; " : " ") + config.servers[i].uri() + ": " + why[i];
            return false;
        }
        std::string all;
        for (std::size_t i = 0; i < n; i++)
            all += (i ? "; " : "") + why[i];
        wait.still_waiting(all);
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    for (std::size_t i = 0; i < n; i++)
        if (!ok[i]) {
            config.health->failed(i, Clock::now(), why[i]);
            avc_log_warning("avir_icap: %s: skipped until it answers", why[i].c_str());
        }
    return true;
}

} // namespace

bool probe_one(const Server &server, std::chrono::milliseconds connect,
               std::chrono::milliseconds answer, std::string &error)
{
    Session session;
    if (!session.open(server, connect, error))
        return false;
    Exchange x = session.options(server, answer);
    session.close();
    if (x.kind != Exchange::Kind::Answer || x.response.status != 200) {
        error = "ICAP server " + server.uri() + " did not answer OPTIONS";
        return false;
    }
    return true;
}

bool probe_servers(Config &config, std::string &error)
{
    if (config.servers.size() > 1)
        return probe_pool(config, error);
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    for (Server &server : config.servers) {
        if (!resolve(server, std::min<Clock::duration>(config.startup_timeout, std::chrono::seconds(30)),
                     error))
            return false;
        WaitLog wait(config);
        for (;;) {
            Probe p = ask_options(server, config, deadline, error);
            if (p == Probe::Ok)
                break;
            if (p == Probe::Fail)
                return false;
            if (Clock::now() + std::chrono::seconds(1) >= deadline) {
                error += wait.tried() + "; is c-icap running, and is its service " +
                         server.service + " loaded?";
                return false;
            }
            wait.still_waiting(error);
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        log_server(server);
    }
    return true;
}

} // namespace avicap
