#include "scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "avPlugin.h"
#include "reply_parser.h"
#include "scan_file.h"

namespace avclam {

namespace {

/* Once per plugin_init, not once per worker: the product has many. */
std::atomic<bool> g_refusal_logged{false};
std::atomic<bool> g_fildes_logged{false};

/*
 * clamd drops idle sessions ("COMMAND READ TIMED OUT", no request id), and a
 * restart resets them: a reused session failing either way gets one fresh
 * session before the file's result is decided.
 */
bool retry_on_fresh_session(const StreamResult &r, const ScanReply &reply, bool reused,
                            int attempt)
{
    bool dropped = r.kind == StreamResult::Kind::Transport ||
                   (r.kind == StreamResult::Kind::Reply && reply.status == ScanStatus::Unexpected);
    return dropped && reused && attempt == 0;
}

/* True when the session ended its command cleanly with a verdict and can carry the next one. */
bool session_healthy(const StreamResult &r, const ScanReply &reply)
{
    return r.kind == StreamResult::Kind::Reply && !r.session_spoiled &&
           (reply.status == ScanStatus::Clean || reply.status == ScanStatus::Infected ||
            reply.status == ScanStatus::Impossible);
}

/* The AVCHK_* code for clamd's reply about `filename`; its text goes into result. */
int reply_verdict(const ScanReply &reply, const std::string &where, const char *filename,
                  char *result)
{
    switch (reply.status) {
    case ScanStatus::Clean:
        return AVCHK_OK;
    case ScanStatus::Infected:
        avc_format(result, AVP_RESULT_SIZE, "%s", reply.detail.c_str());
        avc_log_security("%s found in %s", reply.detail.c_str(), filename);
        return AVCHK_VIRUS_FOUND;
    case ScanStatus::OverLimit:
        if (reply.detail.compare(0, 11, "Heuristics.") == 0) /* AlertExceedsMax's names */
            avc_format(result, AVP_RESULT_SIZE,
                       "%s exceeds a limit of clamd (MaxFileSize, MaxScanSize...): not scanned "
                       "to the end (%s)",
                       filename, reply.detail.c_str());
        else
            avc_format(result, AVP_RESULT_SIZE,
                       "%s is larger than clamd's StreamMaxLength: not scanned (%s)", filename,
                       reply.detail.c_str());
        return AVCHK_IMPOSSIBLE;
    case ScanStatus::Impossible:
        avc_format(result, AVP_RESULT_SIZE, "%s cannot be scanned: %s", filename,
                   reply.detail.c_str());
        return AVCHK_IMPOSSIBLE;
    case ScanStatus::Failed:
        avc_format(result, AVP_RESULT_SIZE, "clamd could not scan %s: %s", filename,
                   reply.detail.c_str());
        return AVCHK_FAILED;
    case ScanStatus::Unexpected:
        break;
    }
    avc_format(result, AVP_RESULT_SIZE, "unexpected reply from clamd at %s while scanning %s: \"%s\"",
               where.c_str(), filename, reply.detail.c_str());
    return AVCHK_FAILED;
}

/*
 * The AVCHK_* code for how the INSTREAM of `filename` ended, with its text in
 * result: a failure of the file, the clock or the connection, else the verdict
 * of clamd's reply (parsed into `reply`).
 */
int scan_outcome(const Config &config, const std::string &where, const StreamResult &r,
                 const ScanReply &reply, const char *filename, char *result, bool past_deadline)
{
    switch (r.kind) {
    case StreamResult::Kind::File:
        avc_format(result, AVP_RESULT_SIZE, "cannot read %s: %s", filename, r.error.c_str());
        return AVCHK_FAILED;
    case StreamResult::Kind::Timeout:
        if (past_deadline)
            avc_format(result, AVP_RESULT_SIZE,
                       "clamd at %s did not finish scanning %s within the scan's deadline "
                       "(ScanTimeout=%lld s x (3 + the file's size in MiB), plus the connect "
                       "timeout), though it never went silent for ScanTimeout",
                       where.c_str(), filename,
                       static_cast<long long>(config.scan_timeout.count()));
        else if (r.while_uploading)
            avc_format(result, AVP_RESULT_SIZE,
                       "clamd at %s made no progress for ScanTimeout=%lld s while %s was "
                       "being sent",
                       where.c_str(), static_cast<long long>(config.scan_timeout.count()),
                       filename);
        else
            avc_format(result, AVP_RESULT_SIZE,
                       "clamd at %s did not answer within ScanTimeout=%lld s after %s was sent",
                       where.c_str(), static_cast<long long>(config.scan_timeout.count()),
                       filename);
        return AVCHK_FAILED;
    case StreamResult::Kind::Overlong:
        avc_format(result, AVP_RESULT_SIZE,
                   "bad reply from clamd at %s while scanning %s: %s (it began \"%s\")",
                   where.c_str(), filename, r.error.c_str(),
                   printable_excerpt(r.reply, 40).c_str());
        return AVCHK_FAILED;
    case StreamResult::Kind::Transport:
        avc_format(result, AVP_RESULT_SIZE, "connection to clamd at %s failed while scanning %s: %s",
                   where.c_str(), filename, r.error.c_str());
        return AVCHK_FAILED;
    case StreamResult::Kind::Reply:
        break;
    }
    return reply_verdict(reply, where, filename, result);
}

/*
 * True when clamd would skip the file and call it clean: it does not report files
 * over its limits (AlertExceedsMax no) and the file is over MaxFileSize or
 * MaxScanSize, which a passed descriptor meets and a stream meets after
 * StreamMaxLength (which clamd does report).
 */
bool would_be_skipped(const Config &config, std::uint64_t size)
{
    return !config.clamd_alerts_on_limits && config.clamd_limit.bytes > 0 &&
           size > config.clamd_limit.bytes;
}

void report_over_clamd_limit(const Config &config, std::uint64_t size, const char *filename,
                             char *result)
{
    avc_format(result, AVP_RESULT_SIZE,
               "%s is %llu bytes, over clamd's %s; clamd at %s would call it clean unscanned "
               "(AlertExceedsMax no): not scanned. Set AlertExceedsMax yes in clamd.conf, or "
               "raise MaxFileSize/MaxScanSize there (and StreamMaxLength, for a streamed file)",
               filename, static_cast<unsigned long long>(size), config.clamd_limit.origin.c_str(),
               config.where().c_str());
}

/*
 * After an OK: whether the file is now over the size at which clamd skips files
 * silently. It may have grown between our fstat and clamd's (a passed
 * descriptor), or while it was streamed to its end; clamd then skipped it, and
 * its OK says nothing about the file.
 */
bool grew_past_clamd_limit(const Config &config, int fd, const char *filename, char *result)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 ||
        !would_be_skipped(config, static_cast<std::uint64_t>(st.st_size)))
        return false;
    avc_format(result, AVP_RESULT_SIZE,
               "%s grew to %llu bytes while it was being scanned, over clamd's %s: clamd at %s "
               "may have skipped it and called it clean. Scan it again once it is complete",
               filename, static_cast<unsigned long long>(st.st_size),
               config.clamd_limit.origin.c_str(), config.where().c_str());
    return true;
}

/* What one connection attempt may take: the StartupTimeout, at most ScanTimeout. */
Clock::duration connect_timeout(const Config &config)
{
    return config.startup_timeout < config.scan_timeout ? config.startup_timeout
                                                        : config.scan_timeout;
}

} // namespace

void reset_fd_pass_notices()
{
    g_refusal_logged.store(false);
    g_fildes_logged.store(false);
}

int Scanner::scan(const std::shared_ptr<ClamdPool> &pool, const char *filename, char *result)
{
    if (!instances_.made_for(pool)) {
        close_session();
        instances_.make_for(pool, pool->size());
    }
    netplugin::FileDescriptor file;
    std::uint64_t size = 0;
    if (!netplugin::open_regular_file(filename, file, size, result))
        return AVCHK_FAILED;
    size_ = size;
    unsized_ = false;
    if (size == 0) {
        switch (netplugin::probe_zero_size(file.fd, filename, result)) {
        case netplugin::ZeroSize::Empty:
            return AVCHK_OK; /* nothing to infect; clamd need not be asked */
        case netplugin::ZeroSize::Unreadable:
            return AVCHK_FAILED;
        case netplugin::ZeroSize::HoldsData:
            unsized_ = true; /* streamed to its end */
            break;
        }
    }
    deadline_ = netplugin::scan_deadline(Clock::now(), connect_timeout(pool->first()),
                                         pool->first().scan_timeout, size);
    const Config &options = pool->first();
    if (options.max_file_size > 0 && size > options.max_file_size) {
        avc_format(result, AVP_RESULT_SIZE, "%s is %llu bytes, over MaxFileSize (%llu): not scanned",
                   filename, static_cast<unsigned long long>(size),
                   static_cast<unsigned long long>(options.max_file_size));
        return AVCHK_IMPOSSIBLE;
    }
    return scan_open_file(*pool, file.fd, filename, result);
}

void Scanner::discard_sessions()
{
    instances_.discard();
}

void Scanner::close_session()
{
    instances_.for_each([](Instance &instance) { instance.session.close(); });
}

void Scanner::shutdown()
{
    instances_.for_each([](Instance &instance) { instance.session.shutdown(); });
}

/* Opens a session unless one is open; `reused` tells which. */
bool Scanner::connect_or_reuse(const Config &config, Session &session, bool &reused,
                               std::string &error)
{
    reused = session.is_open();
    if (reused)
        return true;
    Clock::duration timeout = connect_timeout(config);
    const Clock::duration left = netplugin::time_left(deadline_);
    if (left <= Clock::duration::zero()) {
        error = "the scan's deadline passed before clamd at " + config.where() + " was tried";
        return false;
    }
    return session.open(config, left < timeout ? left : timeout, error);
}

int Scanner::scan_open_file(ClamdPool &pool, int fd, const char *filename, char *result)
{
    if (pool.size() == 1)
        return scan_on(pool.first(), instances_[0], fd, filename, result).code;

    const std::vector<std::size_t> order = pool.health.candidates();
    std::vector<bool> tried(pool.size(), false);
    std::string failures;
    bool retried = false; /* a scan in flight on a dying instance goes elsewhere once */
    for (std::size_t i : order) {
        /* The same open file again: FILDES passes it as it is; INSTREAM reads with pread,
           and clamd may have moved the shared offset. Never reopened by path. */
        ::lseek(fd, 0, SEEK_SET);
        result[0] = '\0'; /* a failed attempt's text must not stay with a later verdict */
        const Config &config = pool.instances[i];
        Attempt a = scan_on(config, instances_[i], fd, filename, result);
        if (!a.instance_failed)
            return a.code;
        tried[i] = true;
        failures += (failures.empty() ? "" : "; ") + config.where() + ": " + a.brief;
        if (pool.health.failed(i, Clock::now(), a.brief))
            avc_log_warning("avir_clam: clamd at %s failed (%s): skipped until it answers again",
                            config.where().c_str(), a.brief.c_str());
        if (a.in_flight) {
            if (retried)
                break;
            retried = true;
        }
        if (Clock::now() >= deadline_)
            break; /* the scan's deadline bounds the pool's retries too */
    }
    for (std::size_t i = 0; i < pool.size(); i++) {
        if (tried[i])
            continue;
        const std::string why = pool.health.why(i);
        failures += (failures.empty() ? "" : "; ") + pool.instances[i].where() + ": " +
                    (why.empty() ? std::string("not tried") : "down (" + why + ")");
    }
    avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: no clamd instance could scan it: %s",
               filename, failures.c_str());
    return AVCHK_FAILED;
}

Scanner::Attempt Scanner::scan_on(const Config &config, Instance &instance, int fd,
                                  const char *filename, char *result)
{
    const std::string where = config.where();
    if (would_be_skipped(config, size_)) {
        report_over_clamd_limit(config, size_, filename, result);
        return {AVCHK_IMPOSSIBLE, false, false, ""};
    }
    Session &session = instance.session;
    /* Bounded: one retry on a fresh session, and one fallback from FILDES to INSTREAM. */
    for (int attempt = 0, rounds = 0; rounds < 3; rounds++) {
        bool reused = false;
        std::string error;
        if (!connect_or_reuse(config, session, reused, error)) {
            avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: %s", filename, error.c_str());
            Attempt a{AVCHK_FAILED, true, false, session.failure_brief()};
            if (a.brief.empty())
                a.brief = "cannot connect";
            return a;
        }
        /* A file whose size reads 0 yet holds data (/proc): clamd, given its
           descriptor, would see st_size 0 and scan nothing. */
        const ScanMethod method =
            unsized_ ? ScanMethod::Instream
                     : choose_method(config.fd_pass, !config.uses_tcp(), instance.fildes_refused);
        StreamResult r = method == ScanMethod::Fildes
                             ? session.fildes(fd, config.scan_timeout, deadline_)
                             : session.instream(fd, config.chunk_size, buffer_,
                                                config.scan_timeout, deadline_);
        if (method == ScanMethod::Fildes && r.kind == StreamResult::Kind::Reply &&
            fildes_refused(r.reply)) {
            session.close(); /* clamd ends the session after refusing */
            if (config.fd_pass == FdPass::On) {
                avc_format(result, AVP_RESULT_SIZE,
                           "clamd at %s refused the descriptor of %s (\"%s\"); FdPass=on never "
                           "streams instead: use a local clamd's own LocalSocket, or FdPass=auto",
                           where.c_str(), filename, printable_excerpt(r.reply).c_str());
                return {AVCHK_FAILED, false, false, ""};
            }
            note_refusal(config, instance, r.reply);
            continue; /* the same file again, streamed on a fresh session */
        }
        ScanReply reply;
        if (r.kind == StreamResult::Kind::Reply)
            reply = parse_scan_reply(r.reply, r.request_id);

        if (retry_on_fresh_session(r, reply, reused, attempt)) {
            avc_log_debug("clamd at %s closed the session (%s); reconnecting", where.c_str(),
                          r.kind == StreamResult::Kind::Transport ? r.error.c_str()
                                                                  : reply.detail.c_str());
            session.close();
            attempt++;
            continue;
        }
        if (!session_healthy(r, reply))
            session.close(); /* after an error clamd may have dropped the session: don't guess */
        else if (method == ScanMethod::Fildes && !g_fildes_logged.exchange(true))
            avc_log_debug("clamd at %s took a file descriptor (FILDES): files are passed to it, "
                          "not streamed",
                          where.c_str());
        Attempt a{scan_outcome(config, where, r, reply, filename, result,
                               Clock::now() >= deadline_),
                  false, false, ""};
        if (a.code == AVCHK_OK && grew_past_clamd_limit(config, fd, filename, result))
            a.code = AVCHK_FAILED;
        if (r.kind == StreamResult::Kind::Transport || r.kind == StreamResult::Kind::Timeout) {
            a.instance_failed = true;
            a.in_flight = true;
            a.brief = r.kind == StreamResult::Kind::Timeout
                          ? "no answer within ScanTimeout=" +
                                std::to_string(config.scan_timeout.count()) + " s"
                          : "connection failed during a scan: " + r.error;
        }
        return a;
    }
    avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: clamd at %s dropped the session again",
               filename, where.c_str());
    return {AVCHK_FAILED, true, true, "dropped the session again"};
}

void Scanner::note_refusal(const Config &config, Instance &instance, const std::string &reply)
{
    instance.fildes_refused = true;
    if (!g_refusal_logged.exchange(true))
        avc_log_warning("clamd at %s does not take file descriptors (\"%s\"): streaming files "
                        "with INSTREAM instead (FdPass=auto). A clamd on another machine behind "
                        "a socket forwarder cannot read our files; set FdPass=off to stop trying",
                        config.where().c_str(), printable_excerpt(reply).c_str());
}

void Scanner::keep_alive(Clock::duration idle_for)
{
    try {
        ping_idle_sessions(idle_for);
    } catch (const std::exception &ex) {
        /* A PING cut short by an exception may leave handlers that point into
           finished calls: nothing of it is used again. */
        avc_log_debug("keep-alive: %s; the next scan reconnects", ex.what());
        discard_sessions();
    }
}

void Scanner::ping_idle_sessions(Clock::duration idle_for)
{
    for (std::size_t i = 0; i < instances_.size(); i++) {
        Session &session = instances_[i].session;
        if (!session.is_open())
            continue;
        if (instances_.shared() && instances_.shared()->health.is_down(i)) {
            /* A PING to a stalled instance would hold this worker's lock for seconds. */
            session.close();
            continue;
        }
        if (Clock::now() - session.last_used() < idle_for)
            continue;
        std::string error;
        if (!session.ping(std::chrono::seconds(5), error)) {
            avc_log_debug("keep-alive: clamd session dropped (%s); the next scan reconnects",
                          error.c_str());
            session.close();
        }
    }
}

} // namespace avclam
