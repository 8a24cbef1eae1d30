#include "scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "avPlugin.h"
#include "scan_file.h"
#include "startup.h"

namespace avicap {

namespace {

std::string base_name(const char *path)
{
    const char *slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The AVCHK_* code for the server's final answer about `filename`. */
int answer_verdict(const Server &server, const Exchange &x, const char *filename, char *result)
{
    ScanVerdict v = respmod_verdict(server, x);
    const std::string uri = server.uri();
    switch (v.verdict) {
    case Verdict::Clean:
        return AVCHK_OK;
    case Verdict::Infected:
        avc_format(result, AVP_RESULT_SIZE, "%s", v.detail.c_str());
        avc_log_security("%s found in %s", v.detail.c_str(), filename);
        return AVCHK_VIRUS_FOUND;
    case Verdict::Impossible:
        avc_format(result, AVP_RESULT_SIZE, "%s cannot be scanned: %s", filename, v.detail.c_str());
        return AVCHK_IMPOSSIBLE;
    case Verdict::Failed:
        avc_format(result, AVP_RESULT_SIZE, "ICAP server %s could not scan %s: %s", uri.c_str(),
                   filename, v.detail.c_str());
        return AVCHK_FAILED;
    case Verdict::Unexpected:
        break;
    }
    avc_format(result, AVP_RESULT_SIZE, "unexpected answer from ICAP server %s while scanning %s: %s",
               uri.c_str(), filename, v.detail.c_str());
    return AVCHK_FAILED;
}

/* The AVCHK_* code for how the RESPMOD of `filename` ended, with its text in result. */
int exchange_outcome(const Config &config, const Server &server, const Exchange &x,
                     const char *filename, char *result, bool past_deadline)
{
    const std::string uri = server.uri();
    switch (x.kind) {
    case Exchange::Kind::File:
        avc_format(result, AVP_RESULT_SIZE, "cannot read %s: %s", filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Timeout:
        if (past_deadline) {
            avc_format(result, AVP_RESULT_SIZE,
                       "ICAP server %s did not finish scanning %s within the scan's deadline "
                       "(ConnectTimeout=%lld s + ScanTimeout=%lld s x (3 + the file's size in "
                       "MiB)), though it never went silent for ScanTimeout",
                       uri.c_str(), filename,
                       static_cast<long long>(config.connect_timeout.count()),
                       static_cast<long long>(config.scan_timeout.count()));
            return AVCHK_FAILED;
        }
        avc_format(result, AVP_RESULT_SIZE,
                   x.while_uploading
                       ? "ICAP server %s made no progress for ScanTimeout=%lld s while %s was being sent"
                       : "ICAP server %s did not answer within ScanTimeout=%lld s about %s",
                   uri.c_str(), static_cast<long long>(config.scan_timeout.count()), filename);
        return AVCHK_FAILED;
    case Exchange::Kind::Protocol:
        avc_format(result, AVP_RESULT_SIZE, "bad answer from ICAP server %s while scanning %s: %s",
                   uri.c_str(), filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Transport:
        avc_format(result, AVP_RESULT_SIZE, "connection to ICAP server %s failed while scanning %s: %s",
                   uri.c_str(), filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Answer:
        break;
    }
    return answer_verdict(server, x, filename, result);
}

/* Whether `fd` holds more than the `size` bytes it had when the scan began. */
bool grew(int fd, std::uint64_t size)
{
    char byte;
    std::size_t got = 0;
    std::string ignored;
    return netplugin::read_at(fd, &byte, 1, size, got, ignored) && got > 0;
}

} // namespace

int Scanner::scan(const std::shared_ptr<const Config> &config, const char *filename, char *result)
{
    if (!sessions_.made_for(config)) {
        close_session();
        sessions_.make_for(config, config->servers.size());
    }
    netplugin::FileDescriptor file;
    std::uint64_t size = 0;
    if (!netplugin::open_regular_file(filename, file, size, result))
        return AVCHK_FAILED;
    if (size == 0) {
        switch (netplugin::probe_zero_size(file.fd, filename, result)) {
        case netplugin::ZeroSize::Empty:
            return AVCHK_OK; /* nothing to infect; the server need not be asked */
        case netplugin::ZeroSize::Unreadable:
            return AVCHK_FAILED;
        case netplugin::ZeroSize::HoldsData:
            /* ICAP announces the body's length (Content-Length, Preview) before
               the body: a size that lies cannot be sent truthfully. */
            avc_format(result, AVP_RESULT_SIZE,
                       "%s cannot be scanned over ICAP: its size reads 0 but it holds data "
                       "(a /proc or sysfs file?)",
                       filename);
            return AVCHK_IMPOSSIBLE;
        }
    }
    deadline_ = netplugin::scan_deadline(Clock::now(), config->connect_timeout,
                                         config->scan_timeout, size);
    if (config->max_file_size > 0 && size > config->max_file_size) {
        avc_format(result, AVP_RESULT_SIZE, "%s is %llu bytes, over MaxFileSize (%llu): not scanned",
                   filename, static_cast<unsigned long long>(size),
                   static_cast<unsigned long long>(config->max_file_size));
        return AVCHK_IMPOSSIBLE;
    }
    const int code = config->servers.size() > 1
                         ? scan_pool(*config, file.fd, size, filename, result)
                         : scan_on(*config, 0, file.fd, size, filename, result).code;
    if (code == AVCHK_OK && grew(file.fd, size)) {
        /* The request announced `size` bytes: what was appended since went unscanned. */
        avc_format(result, AVP_RESULT_SIZE,
                   "%s grew while it was being scanned: only its first %llu bytes were "
                   "scanned; scan it again once it is complete",
                   filename, static_cast<unsigned long long>(size));
        return AVCHK_FAILED;
    }
    return code;
}

void Scanner::discard_sessions()
{
    sessions_.discard();
}

void Scanner::close_session()
{
    sessions_.for_each([](Session &session) { session.close(); });
}

void Scanner::shutdown()
{
    sessions_.for_each([](Session &session) { session.shutdown(); });
}

/* Lazily, on the scans' own clock: the ICAP plugin has no thread of its own. Short
   bounds, so that a stalled server holds this scan up for 1.5 s at most a second. */
void Scanner::probe_down_servers(const Config &config)
{
    for (std::size_t i : config.health->due_for_probe(Clock::now())) {
        std::string error;
        if (probe_one(config.servers[i], std::chrono::milliseconds(500),
                      std::chrono::milliseconds(1000), error) &&
            config.health->answered(i))
            avc_log_warning("avir_icap: ICAP server %s answers again: scans use it",
                            config.servers[i].uri().c_str());
    }
}

int Scanner::scan_pool(const Config &config, int fd, std::uint64_t size, const char *filename,
                       char *result)
{
    probe_down_servers(config);
    const std::vector<std::size_t> order = config.health->candidates();
    std::vector<bool> tried(config.servers.size(), false);
    std::string failures;
    bool retried = false; /* a scan in flight on a dying server goes elsewhere once */
    for (std::size_t i : order) {
        /* The same open file again (read with pread from offset 0), never reopened by name. */
        ::lseek(fd, 0, SEEK_SET);
        result[0] = '\0';
        Attempt a = scan_on(config, i, fd, size, filename, result);
        if (!a.server_failed)
            return a.code;
        tried[i] = true;
        failures += (failures.empty() ? "" : "; ") + config.servers[i].uri() + ": " + a.brief;
        if (config.health->failed(i, Clock::now(), a.brief))
            avc_log_warning("avir_icap: ICAP server %s failed (%s): skipped until it answers again",
                            config.servers[i].uri().c_str(), a.brief.c_str());
        if (a.in_flight) {
            if (retried)
                break;
            retried = true;
        }
        if (Clock::now() >= deadline_)
            break; /* the scan's deadline bounds the pool's retries too */
    }
    for (std::size_t i = 0; i < config.servers.size(); i++) {
        if (tried[i])
            continue;
        const std::string why = config.health->why(i);
        failures += (failures.empty() ? "" : "; ") + config.servers[i].uri() + ": " +
                    (why.empty() ? std::string("not tried") : "down (" + why + ")");
    }
    avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: no ICAP server could scan it: %s",
               filename, failures.c_str());
    return AVCHK_FAILED;
}

/* Connects within ConnectTimeout and what is left of the scan's deadline. */
bool Scanner::open_before_deadline(const Config &config, const Server &server, Session &session,
                                   std::string &error)
{
    const Clock::duration left = netplugin::time_left(deadline_);
    if (left <= Clock::duration::zero()) {
        error = "the scan's deadline passed before " + server.uri() + " was tried";
        return false;
    }
    return session.open(server, left < config.connect_timeout ? left : config.connect_timeout,
                        error);
}

Scanner::Attempt Scanner::scan_on(const Config &config, std::size_t index, int fd,
                                  std::uint64_t size, const char *filename, char *result)
{
    const Server &server = config.servers[index];
    Session &session = sessions_[index];
    for (int attempt = 0;; attempt++) {
        const bool reused = session.is_open();
        if (!reused) {
            std::string error;
            if (!open_before_deadline(config, server, session, error)) {
                avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: %s", filename, error.c_str());
                const std::size_t colon = error.rfind(": ");
                return {AVCHK_FAILED, true, false,
                        colon == std::string::npos ? error : error.substr(colon + 2)};
            }
        }
        Exchange x = session.respmod(server, fd, size, base_name(filename), config.chunk_size,
                                     buffer_, config.scan_timeout, deadline_);
        /* A kept connection the server closed meanwhile (restart, KeepAliveTimeout,
           MaxKeepAliveRequests) gets one fresh connection before anything is decided. */
        if (x.kind == Exchange::Kind::Transport && x.nothing_received && reused && attempt == 0) {
            avc_log_debug("ICAP server %s closed the kept connection (%s); reconnecting",
                          server.uri().c_str(), x.error.c_str());
            session.close();
            continue;
        }
        if (x.kind != Exchange::Kind::Answer)
            session.close();
        Attempt a{exchange_outcome(config, server, x, filename, result,
                                   Clock::now() >= deadline_),
                  false, false, ""};
        if (x.kind == Exchange::Kind::Transport) {
            a.server_failed = a.in_flight = true;
            a.brief = "connection failed during a scan: " + x.error;
        } else if (x.kind == Exchange::Kind::Timeout) {
            a.server_failed = a.in_flight = true;
            a.brief = "no answer within ScanTimeout=" + std::to_string(config.scan_timeout.count()) +
                      " s";
        }
        return a;
    }
}

} // namespace avicap
