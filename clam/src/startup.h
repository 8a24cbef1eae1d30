/*
 * What plugin_init asks of clamd before the plugin takes work: where it is
 * (the stock places when no address was set), that it answers and is recent
 * enough, and whether it reports encrypted archives.
 */
#ifndef AVIR_CLAM_STARTUP_H
#define AVIR_CLAM_STARTUP_H

#include <string>
#include <vector>

#include "config.h"

namespace avclam {

/*
 * When config.discover is set, probes the stock places (discovery.h) until
 * StartupTimeout and points `config` at the first that answers PING; logs
 * the choice. Otherwise does nothing. False with a sentence in `error`.
 */
bool locate_clamd(Config &config, std::string &error);

/*
 * Connects, retrying until StartupTimeout (clamd may still be loading its
 * signatures) unless the failure is permanent, and logging what it waits for
 * at once and every few seconds; checks PING and VERSION, then warns when clamd
 * passes encrypted archives as clean. Sets config's clamd_limit and
 * clamd_alerts_on_limits (whether clamd reports files over its limits).
 */
bool probe_clamd(Config &config, std::string &error);

/*
 * The same for a pool: tries every instance each second until at least one
 * answers (or StartupTimeout); `failures` gets, per instance, why it did not
 * ("" when it answered). False with a sentence naming all of them when none did.
 */
bool probe_pool(std::vector<Config> &instances, std::vector<std::string> &failures,
                std::string &error);

} // namespace avclam

#endif
