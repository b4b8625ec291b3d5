#include "control/MetricsServer.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

#include "control/Metrics.h"

namespace xtap::control {

struct MetricsServerAccess {
    static MHD_Result answer(void* cls, MHD_Connection* connection, const char* url,
                             const char* method, const char*, const char*, size_t* upload_size,
                             void**) {
        auto* self = static_cast<MetricsServer*>(cls);
        unsigned status = MHD_HTTP_OK;
        std::string body;
        std::string_view type = kMetricsContentType;
        *upload_size = 0;  // bodies are ignored: the answer goes on the first call
        if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
            status = MHD_HTTP_METHOD_NOT_ALLOWED;
            body = "GET /metrics only\n";
        } else if (std::strcmp(url, "/metrics") != 0) {
            status = MHD_HTTP_NOT_FOUND;
            body = "metrics are at /metrics\n";
        } else {
            try {
                body = self->render_();
            } catch (const std::exception&) {
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
                body = "metrics unavailable\n";
            }
        }
        if (status != MHD_HTTP_OK) type = "text/plain; charset=utf-8";
        MHD_Response* response =
            MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
        if (!response) return MHD_NO;
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, std::string(type).c_str());
        if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
            MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        const MHD_Result r = MHD_queue_response(connection, status, response);
        MHD_destroy_response(response);
        return r;
    }
};

MetricsServer::MetricsServer(MetricsServerOptions options, Render render)
    : options_(std::move(options)), render_(std::move(render)) {
    sockaddr_storage storage{};
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (inet_pton(AF_INET, options_.address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(options_.port);
    } else if (inet_pton(AF_INET6, options_.address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(options_.port);
        flags |= MHD_USE_IPv6;
    } else {
        throw std::runtime_error("metrics.listen: '" + options_.address +
                                 "' is not a numeric IP address");
    }
    daemon_ = MHD_start_daemon(
        flags, options_.port, nullptr, nullptr, &MetricsServerAccess::answer, this,
        MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&storage), MHD_OPTION_CONNECTION_LIMIT,
        options_.connection_limit, MHD_OPTION_CONNECTION_TIMEOUT, options_.timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, size_t(32 * 1024), MHD_OPTION_END);
    if (!daemon_)
        throw std::runtime_error("metrics: cannot listen on " + options_.address + " port " +
                                 std::to_string(options_.port) +
                                 " (in use, or not an address of this host)");
}

MetricsServer::~MetricsServer() {
    if (daemon_) MHD_stop_daemon(daemon_);
}

uint16_t MetricsServer::port() const {
    const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : options_.port;
}

}  // namespace xtap::control
