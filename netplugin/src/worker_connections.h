/*
 * A worker's connections, one per server of the plugin_init result they were made
 * for, as both network plugins keep them. Made afresh all at once when plugin_init
 * ran again (maybe with other servers): the result in use changes only once every
 * connection object exists, so a failure half-way (no descriptor for an
 * io_context) leaves the next scan to try again, never a result without its
 * connections.
 */
#ifndef NETPLUGIN_WORKER_CONNECTIONS_H
#define NETPLUGIN_WORKER_CONNECTIONS_H

#include <cstddef>
#include <memory>
#include <vector>

namespace netplugin {

template <typename Shared, typename Connection>
class WorkerConnections {
public:
    /* Whether these are the connections of `shared` (else make_for must run first). */
    bool made_for(const std::shared_ptr<Shared> &shared) const { return shared_ == shared; }

    void make_for(const std::shared_ptr<Shared> &shared, std::size_t count)
    {
        std::vector<std::unique_ptr<Connection>> fresh;
        for (std::size_t i = 0; i < count; i++)
            fresh.push_back(std::make_unique<Connection>());
        connections_.swap(fresh);
        shared_ = shared;
    }

    /* Destroying an io_context drops its handlers without running them: after an
       exception cut an operation short, nothing of it may be used again. */
    void discard()
    {
        shared_.reset();
        connections_.clear();
    }

    const std::shared_ptr<Shared> &shared() const { return shared_; }
    std::size_t size() const { return connections_.size(); }
    Connection &operator[](std::size_t i) { return *connections_[i]; }

    template <typename Function>
    void for_each(Function f)
    {
        for (auto &connection : connections_)
            f(*connection);
    }

private:
    std::shared_ptr<Shared> shared_;
    std::vector<std::unique_ptr<Connection>> connections_;
};

} // namespace netplugin

#endif
