/*
 * avir_clam on the simple plugin API (avPlugin.h): what plugin_init and
 * plugin_close do for clamd, and the keep-alive thread that walks the worker
 * contexts. The registry of contexts, the scans in flight and the exception
 * barrier are the ICAP plugin's too (netplugin/src/plugin_engine.h).
 */
#include <memory>
#include <mutex>
#include <vector>

#include "avPlugin.h"
#include "clamd_pool.h"
#include "config.h"
#include "keepalive.h"
#include "plugin_engine.h"
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

using Engine = netplugin::PluginEngine<Scanner, ClamdPool>;

Engine &engine()
{
    static Engine e("avir_clam"); /* constructed on first use, so no order-of-initialisation issue */
    return e;
}

/* Stopped by plugin_close before the sessions it pings are closed. */
KeepAlive &keepalive_thread()
{
    static KeepAlive k;
    return k;
}

void keepalive_tick(Clock::duration idle_for)
{
    if (idle_for == Clock::duration::zero())
        return; /* KeepAliveInterval=0 */
    for (const auto &s : engine().scanners()) {
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
    reset_fd_pass_notices();
    engine().install(pool);
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
        keepalive_thread().start(period, [idle_for, weak] {
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
    engine().wait_for_scans();
    keepalive_thread().stop();
    engine().close();
}

} // namespace
} // namespace avclam

using namespace avclam;

extern "C" int avp_init(void)
{
    return engine().guarded_init(init);
}

extern "C" void avp_close(void)
{
    engine().guarded_close(close_engine);
}

extern "C" int avp_thread_init(void **context)
{
    return engine().thread_init(context);
}

/* Waits for a keep-alive PING on the context; the last reference closes the session. */
extern "C" void avp_thread_close(void *context)
{
    engine().thread_close(context);
}

extern "C" int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    (void)realname;
    return engine().test_file(context, filename, result);
}
