/*
 * The clamd instances plugin_init found in Address or LocalSocket (pool.h has
 * the syntax and the health rules), each a Config of its own with its
 * endpoints resolved, and their shared health.
 */
#ifndef AVIR_CLAM_CLAMD_POOL_H
#define AVIR_CLAM_CLAMD_POOL_H

#include <string>
#include <vector>

#include "config.h"
#include "pool.h" /* netplugin: the list syntax and the health rules */

namespace avclam {

using netplugin::Health;

/* One Config per entry of Address (or LocalSocket); false with a sentence when an entry is bad. */
bool expand_pool(const Config &base, std::vector<Config> &out, std::string &error);

struct ClamdPool {
    explicit ClamdPool(std::vector<Config> configs)
        : instances(std::move(configs)), health(instances.size())
    {
    }
    const std::vector<Config> instances; /* never empty */
    Health health;

    std::size_t size() const { return instances.size(); }
    const Config &first() const { return instances.front(); }
    /* "a:3310, b:3310" for messages. */
    std::string names() const;
    /* PINGs the down instances whose probe is due; those that answer are used again.
       Called by the background thread only. */
    void probe_due();
};

} // namespace avclam

#endif
