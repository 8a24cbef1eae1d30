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

enum class Probe { Ok, Retry, Fail };

/* One OPTIONS round; on Retry or Fail, `error` says why. */
Probe ask_options(Server &server, const Config &config, Clock::time_point deadline,
                  std::string &error)
{
    Session session;
    Clock::duration connect = std::min<Clock::duration>(config.connect_timeout, time_left(deadline));
    if (!session.open(server, connect, error))
        return Probe::Retry; /* refused or silent: c-icap may be starting */
    Exchange x = session.options(server, std::max<Clock::duration>(time_left(deadline),
                                                                   std::chrono::seconds(1)));
    session.close();
    const std::string where = "ICAP server " + server.uri();
    switch (x.kind) {
    case Exchange::Kind::Answer:
        break;
    case Exchange::Kind::Timeout:
        error = where + " did not answer OPTIONS within StartupTimeout";
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
    server.preview = options.preview < 0 ? -1
                     : config.preview_size < 0 ? options.preview
                                               : std::min(config.preview_size, options.preview);
    return Probe::Ok;
}

void log_server(const Server &server)
{
    avc_log_debug("avir_icap: ICAP server %s: %s, ISTag %s, preview %ld bytes (server: %ld), "
                  "204 %s",
                  server.uri().c_str(), server.options.service.c_str(),
                  server.options.istag.c_str(), server.preview, server.options.preview,
                  server.options.allow_204 ? "allowed" : "not offered");
}

/* A pool: every server each second until at least one answers; the others start down. */
bool probe_pool(Config &config, std::string &error)
{
    const Clock::time_point deadline = Clock::now() + config.startup_timeout;
    const std::size_t n = config.servers.size();
    for (Server &server : config.servers)
        if (!resolve(server, std::min<Clock::duration>(config.startup_timeout,
                                                       std::chrono::seconds(30)),
                     error))
            return false;
    std::vector<std::string> why(n, "not tried");
    std::vector<bool> ok(n, false), for_good(n, false);
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
            error = "no ICAP server of the pool answered OPTIONS within StartupTimeout=" +
                    std::to_string(config.startup_timeout.count()) + " s:";
            for (std::size_t i = 0; i < n; i++)
                error += (i ? "; " : " ") + config.servers[i].uri() + ": " + why[i];
            return false;
        }
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
        for (;;) {
            Probe p = ask_options(server, config, deadline, error);
            if (p == Probe::Ok)
                break;
            if (p == Probe::Fail)
                return false;
            if (Clock::now() + std::chrono::seconds(1) >= deadline) {
                error += " (tried for " + std::to_string(config.startup_timeout.count()) +
                         " s, StartupTimeout); is c-icap running, and is its service " +
                         server.service + " loaded?";
                return false;
            }
            std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        log_server(server);
    }
    return true;
}

} // namespace avicap
