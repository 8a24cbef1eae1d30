/*
 * The plugin-wide keep-alive: one thread that PINGs sessions idle for
 * KeepAliveInterval, so that clamd's IdleTimeout does not drop them between
 * scans. A thread per context would be forbidden (the host owns the workers)
 * and wasteful.
 */
#ifndef AVIR_CLAM_KEEPALIVE_H
#define AVIR_CLAM_KEEPALIVE_H

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace avclam {

class KeepAlive {
public:
    using Tick = std::function<void()>;
    ~KeepAlive() { stop(); }

    /* Calls `tick` every `period` until stop(). */
    void start(std::chrono::milliseconds period, Tick tick);
    /* Wakes the thread and joins it; returns within one tick's duration. */
    void stop();

private:
    void run();

    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::chrono::milliseconds period_{1000};
    Tick tick_;
    std::thread thread_;
};

} // namespace avclam

#endif
