#include "scanner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "avPlugin.h"

namespace avicap {

namespace {

/* Closes the file on every path out of scan(). */
struct FileDescriptor {
    int fd;
    ~FileDescriptor()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

std::string base_name(const char *path)
{
    const char *slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The AVCHK_* code for the server's final answer about `filename`. */
int answer_verdict(const Server &server, const Exchange &x, const char *filename, char *result)
{
    ScanVerdict v = response_verdict(x.response, x.http);
    const std::string uri = server.uri();
    switch (v.verdict) {
    case Verdict::Clean:
        return AVCHK_OK;
    case Verdict::Infected:
        avc_format(result, AVP_RESULT_SIZE, "%s", v.detail.c_str());
        avc_log_security("%s found in %s", v.detail.c_str(), filename);
        return AVCHK_VIRUS_FOUND;
    case Verdict::Impossible:
        avc_format(result, AVP_RESULT_SIZE, "%s cannot be scanned: %s", filename, v.detail.c_str());
        return AVCHK_IMPOSSIBLE;
    case Verdict::Failed:
        avc_format(result, AVP_RESULT_SIZE, "ICAP server %s could not scan %s: %s", uri.c_str(),
                   filename, v.detail.c_str());
        return AVCHK_FAILED;
    case Verdict::Unexpected:
        break;
    }
    avc_format(result, AVP_RESULT_SIZE, "unexpected answer from ICAP server %s while scanning %s: %s",
               uri.c_str(), filename, v.detail.c_str());
    return AVCHK_FAILED;
}

/* The AVCHK_* code for how the RESPMOD of `filename` ended, with its text in result. */
int exchange_outcome(const Config &config, const Server &server, const Exchange &x,
                     const char *filename, char *result)
{
    const std::string uri = server.uri();
    switch (x.kind) {
    case Exchange::Kind::File:
        avc_format(result, AVP_RESULT_SIZE, "cannot read %s: %s", filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Timeout:
        avc_format(result, AVP_RESULT_SIZE,
                   x.while_uploading
                       ? "ICAP server %s made no progress for ScanTimeout=%lld s while %s was being sent"
                       : "ICAP server %s did not answer within ScanTimeout=%lld s about %s",
                   uri.c_str(), static_cast<long long>(config.scan_timeout.count()), filename);
        return AVCHK_FAILED;
    case Exchange::Kind::Protocol:
        avc_format(result, AVP_RESULT_SIZE, "bad answer from ICAP server %s while scanning %s: %s",
                   uri.c_str(), filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Transport:
        avc_format(result, AVP_RESULT_SIZE, "connection to ICAP server %s failed while scanning %s: %s",
                   uri.c_str(), filename, x.error.c_str());
        return AVCHK_FAILED;
    case Exchange::Kind::Answer:
        break;
    }
    return answer_verdict(server, x, filename, result);
}

} // namespace

int Scanner::scan(const std::shared_ptr<const Config> &config, const char *filename, char *result)
{
    if (config_ != config) {
        /* plugin_init ran again, maybe with other options: start afresh. */
        session_.close();
        config_ = config;
    }
    /* O_NONBLOCK: opening a FIFO without a writer would block this worker for
       ever; it is refused below as not a regular file. Reads of regular files
       ignore the flag. The file is read through this descriptor only, never
       reopened by its name. */
    FileDescriptor file{::open(filename, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
    if (file.fd < 0) {
        avc_format(result, AVP_RESULT_SIZE, "cannot open %s: %s", filename, std::strerror(errno));
        return AVCHK_FAILED;
    }
    struct stat st;
    if (::fstat(file.fd, &st) != 0) {
        avc_format(result, AVP_RESULT_SIZE, "cannot stat %s: %s", filename, std::strerror(errno));
        return AVCHK_FAILED;
    }
    if (!S_ISREG(st.st_mode)) {
        avc_format(result, AVP_RESULT_SIZE, "%s is not a regular file", filename);
        return AVCHK_FAILED;
    }
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (size == 0)
        return AVCHK_OK; /* nothing to infect; the server need not be asked */
    if (config->max_file_size > 0 && size > config->max_file_size) {
        avc_format(result, AVP_RESULT_SIZE, "%s is %llu bytes, over MaxFileSize (%llu): not scanned",
                   filename, static_cast<unsigned long long>(size),
                   static_cast<unsigned long long>(config->max_file_size));
        return AVCHK_IMPOSSIBLE;
    }
    return scan_open_file(*config, config->servers.front(), file.fd, size, filename, result);
}

int Scanner::scan_open_file(const Config &config, const Server &server, int fd, std::uint64_t size,
                            const char *filename, char *result)
{
    for (int attempt = 0;; attempt++) {
        const bool reused = session_.is_open();
        if (!reused) {
            std::string error;
            if (!session_.open(server, config.connect_timeout, error)) {
                avc_format(result, AVP_RESULT_SIZE, "cannot scan %s: %s", filename, error.c_str());
                return AVCHK_FAILED;
            }
        }
        Exchange x = session_.respmod(server, fd, size, base_name(filename), config.chunk_size,
                                      buffer_, config.scan_timeout);
        /* A kept connection the server closed meanwhile (restart, KeepAliveTimeout,
           MaxKeepAliveRequests) gets one fresh connection before anything is decided. */
        if (x.kind == Exchange::Kind::Transport && x.nothing_received && reused && attempt == 0) {
            avc_log_debug("ICAP server %s closed the kept connection (%s); reconnecting",
                          server.uri().c_str(), x.error.c_str());
            session_.close();
            continue;
        }
        if (x.kind != Exchange::Kind::Answer)
            session_.close();
        return exchange_outcome(config, server, x, filename, result);
    }
}

} // namespace avicap
