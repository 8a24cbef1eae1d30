#include "clamd_pool.h"

#include "avPlugin.h"
#include "session.h"

namespace avclam {

namespace {

/* Short, so that plugin_close (which joins the probing thread) is not held up by a
   stalled instance: it accepts connections but never answers. */
constexpr auto kProbeConnect = std::chrono::milliseconds(500);
constexpr auto kProbePing = std::chrono::milliseconds(1000);

} // namespace

bool expand_pool(const Config &base, std::vector<Config> &out, std::string &error)
{
    out.clear();
    if (!base.uses_tcp()) {
        for (const std::string &path : netplugin::split_list(base.local_socket)) {
            Config c = base;
            c.local_socket = path;
            out.push_back(c);
        }
        if (out.empty())
            error = "option LocalSocket lists no socket path";
        return !out.empty();
    }
    for (const std::string &entry : netplugin::split_list(base.address)) {
        netplugin::Endpoint e;
        if (!netplugin::parse_endpoint(entry, e)) {
            error = "option Address: \"" + entry +
                    "\" is not host, host:port, [IPv6] or [IPv6]:port (entries are separated "
                    "by commas)";
            return false;
        }
        Config c = base;
        c.address = e.host;
        if (!e.port.empty())
            c.port = e.port;
        out.push_back(c);
    }
    if (out.empty())
        error = "option Address lists no host";
    return !out.empty();
}

std::string ClamdPool::names() const
{
    std::string out;
    for (const Config &c : instances)
        out += (out.empty() ? "" : ", ") + c.where();
    return out;
}

void ClamdPool::probe_due()
{
    for (std::size_t i : health.due_for_probe(Clock::now())) {
        Session session;
        std::string error;
        if (session.open(instances[i], kProbeConnect, error) && session.ping(kProbePing, error)) {
            if (health.answered(i))
                avc_log_warning("avir_clam: clamd at %s answers again: scans use it",
                                instances[i].where().c_str());
        }
        session.close();
    }
}

} // namespace avclam
