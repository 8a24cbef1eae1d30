#include "keepalive.h"

namespace avclam {

void KeepAlive::start(std::chrono::milliseconds period, Tick tick)
{
    stop();
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = false;
    period_ = period;
    tick_ = std::move(tick);
    thread_ = std::thread([this] { run(); });
}

void KeepAlive::stop()
{
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void KeepAlive::run()
{
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        if (wake_.wait_for(lock, period_, [this] { return stopping_; }))
            break;
        lock.unlock();
        try {
            tick_();
        } catch (...) {
            /* An exception escaping a std::thread would abort the host. */
        }
        lock.lock();
    }
}

} // namespace avclam
