/*
 * What plugin_init asks of the ICAP server before the plugin takes work:
 * where it is (the host resolved once), that it answers OPTIONS for the
 * service, offers RESPMOD, and how large a preview it wants.
 */
#ifndef AVIR_ICAP_STARTUP_H
#define AVIR_ICAP_STARTUP_H

#include <chrono>
#include <string>

#include "config.h"

namespace avicap {

/*
 * Resolves each server and asks it OPTIONS (a pool: each second until at least
 * one answers; the others start down), retrying a refused or timed-out
 * connection until StartupTimeout (c-icap may still be starting); an answer
 * that cannot change by waiting (no such service, no RESPMOD, not ICAP, an
 * unknown host) fails at once. Fills in each server's endpoints, options and
 * preview. False with a sentence naming the server, port and service.
 */
bool probe_servers(Config &config, std::string &error);

/* A pool's background check of one down server: OPTIONS answered 200 within the bounds. */
bool probe_one(const Server &server, std::chrono::milliseconds connect,
               std::chrono::milliseconds answer, std::string &error);

} // namespace avicap

#endif
