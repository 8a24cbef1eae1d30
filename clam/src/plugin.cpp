/*
 * avir_clam on the simple plugin API (avPlugin.h): the engine's life cycle,
 * the registry of worker contexts shared with the keep-alive, and the
 * exception barrier in front of the C interface.
 */
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "avPlugin.h"
#include "clamd_pool.h"
#include "config.h"
#include "keepalive.h"
#include "reply_parser.h"
#include "scanner.h"
#include "session.h"
#include "startup.h"

#ifndef CLAM_PLUGIN_VERSION
#define CLAM_PLUGIN_VERSION "0.0.0" /* CMake passes the project version */
#endif

extern "C" const avp_plugin_desc avp_plugin = {
    "avir_clam",
    "Clam AntiVirus plugin " CLAM_PLUGIN_VERSION " for Kerio",
    avclam::kOptions,
    avclam::kOptionCount,
};

namespace avclam {
namespace {

/* How long plugin_close lets scans in flight finish before cutting their sockets. */
constexpr auto kCloseGrace = std::chrono::seconds(10);
constexpr auto kCloseAfterShutdown = std::chrono::seconds(5);

struct Engine {
    std::mutex mutex;
    std::condition_variable idle; /* signalled when in_flight drops to 0 */
    int in_flight = 0;
    std::shared_ptr<ClamdPool> pool;
    /* Contexts outlive plugin_close/plugin_init: the host may keep its workers. */
    std::vector<std::shared_ptr<Scanner>> scanners;
    KeepAlive keepalive;
};

Engine &engine()
{
    static Engine e; /* constructed on first use, so no order-of-initialisation issue */
    return e;
}

std::vector<std::shared_ptr<Scanner>> all_scanners()
{
    Engine &e = engine();
    std::lock_guard<std::mutex> lock(e.mutex);
    return e.scanners;
}

void keepalive_tick(Clock::duration idle_for)
{
    if (idle_for == Clock::duration::zero())
        return; /* KeepAliveInterval=0 */
    for (const auto &s : all_scanners()) {
        std::unique_lock<std::timed_mutex> lock(s->mutex, std::try_to_lock);
        if (lock.owns_lock()) /* a busy session needs no PING */
            s->keep_alive(idle_for);
    }
}

/* FdPass=on over TCP cannot work: said at once, not per file. */
bool check_fd_pass(const Config &config, std::string &error)
{
    const char *conflict = fd_pass_conflict(config.fd_pass, !config.uses_tcp());
    if (*conflict == '\0')
        return true;
    error = std::string(conflict) + " (clamd found at " + config.where() + ")";
    return false;
}

/* The pool of plugin_init: every instance resolved and checked; the ones that did not
   answer are down (probed in the background). A single instance must answer. */
std::shared_ptr<ClamdPool> make_pool(std::string &error)
{
    Config base;
    std::vector<Config> instances;
    if (!load_config(base, error) || !locate_clamd(base, error) ||
        !expand_pool(base, instances, error))
        return nullptr;
    for (Config &config : instances)
        if (!resolve_endpoints(config, config.startup_timeout, error) ||
            !check_fd_pass(config, error))
            return nullptr;
    if (instances.size() == 1) {
        if (!probe_clamd(instances.front(), error))
            return nullptr;
        return std::make_shared<ClamdPool>(std::move(instances));
    }
    std::vector<std::string> failures;
    if (!probe_pool(instances, failures, error))
        return nullptr;
    auto pool = std::make_shared<ClamdPool>(std::move(instances));
    for (std::size_t i = 0; i < pool->size(); i++)
        if (!failures[i].empty()) {
            pool->health.failed(i, Clock::now(), failures[i]);
            avc_log_warning("avir_clam: clamd at %s does not answer (%s): skipped until it does",
                            pool->instances[i].where().c_str(), failures[i].c_str());
        }
    return pool;
}

int init()
{
    std::string error;
    std::shared_ptr<ClamdPool> pool = make_pool(error);
    if (!pool) {
        avc_set_error("%s", error.c_str());
        return 0;
    }
    const Config &config = pool->first();
    Engine &e = engine();
    reset_fd_pass_notices();
    {
        std::lock_guard<std::mutex> lock(e.mutex);
        e.pool = pool;
    }
    const bool keepalive = config.keepalive_interval.count() > 0;
    if (keepalive || pool->size() > 1) {
        /* Wake often enough that a session is pinged soon after it became idle enough,
           and that a pool's instance is probed about a second after it failed. */
        std::chrono::milliseconds period = std::chrono::seconds(1);
        if (keepalive && config.keepalive_interval < period)
            period = config.keepalive_interval;
        if (pool->size() > 1)
            period = std::chrono::milliseconds(250);
        Clock::duration idle_for = config.keepalive_interval;
        std::weak_ptr<ClamdPool> weak = pool;
        e.keepalive.start(period, [idle_for, weak] {
            keepalive_tick(idle_for);
            if (auto p = weak.lock())
                if (p->size() > 1)
                    p->probe_due();
        });
    }
    avc_log_debug("avir_clam started: clamd at %s, files %s, ScanTimeout %lld s, ChunkSize %u, "
                  "MaxFileSize %llu, KeepAliveInterval %lld s",
                  pool->names().c_str(),
                  choose_method(config.fd_pass, !config.uses_tcp(), false) == ScanMethod::Fildes
                      ? "passed as descriptors (FILDES)"
                      : "streamed (INSTREAM)",
                  static_cast<long long>(config.scan_timeout.count()),
                  static_cast<unsigned>(config.chunk_size),
                  static_cast<unsigned long long>(config.max_file_size),
                  static_cast<long long>(config.keepalive_interval.count()));
    return 1;
}

void close_engine()
{
    Engine &e = engine();
    {
        std::unique_lock<std::mutex> lock(e.mutex);
        if (!e.idle.wait_for(lock, kCloseGrace, [&] { return e.in_flight == 0; })) {
            avc_log_warning("avir_clam: %d scan(s) still running after %lld s; cutting their "
                            "connections",
                            e.in_flight, static_cast<long long>(kCloseGrace.count()));
            for (const auto &s : e.scanners)
                s->shutdown();
            e.idle.wait_for(lock, kCloseAfterShutdown, [&] { return e.in_flight == 0; });
        }
    }
    e.keepalive.stop();
    for (const auto &s : all_scanners()) {
        std::unique_lock<std::timed_mutex> lock(s->mutex, std::try_to_lock);
        if (lock.owns_lock())
            s->close_session();
    }
    std::lock_guard<std::mutex> lock(e.mutex);
    e.pool.reset();
    avc_log_debug("avir_clam stopped");
}

/* Counts a scan in flight so that plugin_close can wait for it. */
class InFlight {
public:
    InFlight() : e_(engine())
    {
        std::lock_guard<std::mutex> lock(e_.mutex);
        e_.in_flight++;
        pool_ = e_.pool;
    }
    ~InFlight()
    {
        std::lock_guard<std::mutex> lock(e_.mutex);
        if (--e_.in_flight == 0)
            e_.idle.notify_all();
    }
    const std::shared_ptr<ClamdPool> &pool() const { return pool_; }

private:
    Engine &e_;
    std::shared_ptr<ClamdPool> pool_;
};

} // namespace
} // namespace avclam

using namespace avclam;

extern "C" int avp_init(void)
{
    try {
        return init();
    } catch (const std::exception &ex) {
        avc_set_error("avir_clam: cannot start: %s", ex.what());
    } catch (...) {
        avc_set_error("avir_clam: cannot start: unknown exception");
    }
    return 0;
}

extern "C" void avp_close(void)
{
    try {
        close_engine();
    } catch (...) {
        avc_log_error("avir_clam: error while stopping");
    }
}

extern "C" int avp_thread_init(void **context)
{
    try {
        auto scanner = std::make_shared<Scanner>();
        Engine &e = engine();
        std::lock_guard<std::mutex> lock(e.mutex);
        e.scanners.push_back(scanner);
        *context = scanner.get();
        return 1;
    } catch (...) {
        avc_set_error("avir_clam: out of memory for a thread context");
        return 0;
    }
}

extern "C" void avp_thread_close(void *context)
{
    std::shared_ptr<Scanner> dying;
    {
        Engine &e = engine();
        std::lock_guard<std::mutex> lock(e.mutex);
        auto it = std::find_if(e.scanners.begin(), e.scanners.end(),
                               [context](const std::shared_ptr<Scanner> &s) { return s.get() == context; });
        if (it == e.scanners.end())
            return;
        dying = std::move(*it);
        e.scanners.erase(it);
    }
    /* Waits for a keep-alive PING on it; the last reference closes the session. */
    std::lock_guard<std::timed_mutex> lock(dying->mutex);
    dying->close_session();
}

extern "C" int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    (void)realname;
    try {
        InFlight guard;
        if (!guard.pool()) {
            avc_format(result, AVP_RESULT_SIZE, "avir_clam: scan of %s requested while stopped",
                       filename);
            return AVCHK_ERROR;
        }
        auto *scanner = static_cast<Scanner *>(context);
        std::lock_guard<std::timed_mutex> lock(scanner->mutex);
        return scanner->scan(guard.pool(), filename, result);
    } catch (const std::exception &ex) {
        avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s: %s", filename, ex.what());
    } catch (...) {
        avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s", filename);
    }
    return AVCHK_FAILED;
}
