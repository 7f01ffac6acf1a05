#include "api/cluster.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <future>

#include <httplib.h>

namespace cyme::api {

namespace {

/// The scheme, host and port of a peer's http:// or https:// URL, as
/// "https://host:port" (what httplib::Client takes); nothing for any other.
std::optional<std::string> origin_of(const std::string& url) {
  for (std::string scheme : {"http://", "https://"}) {
    if (url.rfind(scheme, 0) != 0)
      continue;
    auto rest = url.substr(scheme.size());
    rest = rest.substr(0, rest.find('/'));
    if (rest.empty())
      return std::nullopt;
    return scheme + rest;
  }
  return std::nullopt;
}

std::string percent_encode(const std::string& x) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : x) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

/// A decoded path encoded again for a request line ('/' kept).
std::string percent_encode_path(const std::string& path) {
  std::string out;
  size_t pos = 0;
  while (pos <= path.size()) {
    auto slash = path.find('/', pos);
    if (slash == std::string::npos)
      slash = path.size();
    out += percent_encode(path.substr(pos, slash - pos));
    if (slash < path.size())
      out += '/';
    pos = slash + 1;
  }
  return out;
}

/// How long a lookup among the peers (who owns an instance, a listing)
/// waits for one; a silent peer must not hold a handler thread for long.
constexpr time_t lookup_timeout_s = 5;

} // namespace

bool cluster_room::clustered(const params& p) const {
  return ctx_.parts.cluster != nullptr && !p.flag("local");
}

void cluster_room::branches(const std::string& method,
                            http::response& res) const {
  if (method != "GET")
    fail(405, "method not allowed");
  if (ctx_.parts.cluster == nullptr)
    fail(404, "this branch follows no presence topic");
  auto live = ctx_.parts.cluster->live();
  std::sort(live.begin(), live.end(),
            [](auto& a, auto& b) { return a.id < b.id; });
  json out = json::array();
  for (auto& b : live)
    out.push_back(json{{"id", b.id},
                       {"http", b.http},
                       {"node", b.node},
                       {"instances", b.instances},
                       {"load", b.load},
                       {"every_ms", b.every.count()},
                       {"self", b.id == ctx_.parts.branch_id}});
  reply(res, 200, out);
}

std::vector<branch_info> cluster_room::peers() const {
  std::vector<branch_info> out;
  for (auto& b : ctx_.parts.cluster->live())
    if (b.id != ctx_.parts.branch_id)
      out.push_back(b);
  return out;
}

std::optional<peer_answer>
cluster_room::call(const branch_info& peer, const std::string& method,
                   const std::string& target, const std::string& body,
                   const std::string& type) {
  auto origin = origin_of(peer.http);
  if (!origin)
    return std::nullopt;
  httplib::Client c{*origin};
  if (!c.is_valid())
    return std::nullopt;
  // A peer over HTTPS proves who it is with a certificate of the CA given
  // (--http-ca), or else of one the system trusts.
  c.enable_server_certificate_verification(true);
  if (!ctx_.settings.peer_ca_file.empty())
    c.set_ca_cert_path(ctx_.settings.peer_ca_file.c_str());
  // Branches of one cluster share the token.
  if (!ctx_.settings.token.empty())
    c.set_bearer_token_auth(ctx_.settings.token.c_str());
  c.set_connection_timeout(2, 0);
  // A GET is a lookup; a change waits on the peer's supervisor.
  c.set_read_timeout(method == "GET"
                       ? lookup_timeout_s
                       : static_cast<time_t>(
                         ctx_.settings.request_timeout.count()),
                     0);
  httplib::Result r{nullptr, httplib::Error::Unknown};
  if (method == "GET")
    r = c.Get(target.c_str());
  else if (method == "DELETE")
    r = c.Delete(target.c_str(), body, type.c_str());
  else if (method == "PUT")
    r = c.Put(target.c_str(), body, type.c_str());
  else
    r = c.Post(target.c_str(), body, type.c_str());
  if (!r) {
    // Nothing takes connections there: the branch is gone sooner than its
    // silence would say (in a large cluster that is a minute). A peer
    // slow to answer stays.
    if (ctx_.parts.cluster != nullptr
        && (r.error() == httplib::Error::Connection
            || r.error() == httplib::Error::ConnectionTimeout))
      ctx_.parts.cluster->unreachable(peer.id);
    return std::nullopt;
  }
  return peer_answer{r->status, r->body};
}

void cluster_room::forward(const branch_info& peer, const http::request& req,
                           http::response& res) {
  if (!try_forward(peer, req, res))
    fail(503, "branch '" + peer.id + "' did not answer");
}

/// The request's target on a peer, marked local.
static std::string local_target(const http::request& req) {
  std::string target = percent_encode_path(req.path) + "?local=1";
  for (auto& [k, v] : req.params)
    if (k != "local")
      target += "&" + percent_encode(k) + "=" + percent_encode(v);
  return target;
}

void cluster_room::redirect(const branch_info& peer, const http::request& req,
                            http::response& res) {
  reply(res, 307, json{{"error", "instance is on branch '" + peer.id + "'"},
                       {"location", peer.http + local_target(req)}});
  res.headers.emplace_back("Location", peer.http + local_target(req));
}

bool cluster_room::try_forward(const branch_info& peer,
                               const http::request& req, http::response& res) {
  auto type = req.header("content-type");
  auto r = call(peer, req.method, local_target(req), req.body,
                type.empty() ? "application/json" : type);
  if (!r)
    return false;
  res.status = r->status;
  res.content_type = "application/json";
  res.body = r->body;
  return true;
}

std::optional<branch_info>
cluster_room::owner_elsewhere(const std::string& app, const std::string& name) {
  check_name("app", app);
  check_name("instance", name);
  auto spec = ctx_.find_spec(name);
  if (spec && spec->app == app)
    return std::nullopt;
  // Every peer is asked at once, each on its own thread: the answer takes
  // as long as the slowest branch, not the sum of all.
  auto all = peers();
  auto target = "/" + app + "/instances/" + name + "/?local=1";
  std::vector<std::future<bool>> asked;
  asked.reserve(all.size());
  for (auto& peer : all)
    asked.push_back(std::async(std::launch::async, [this, &peer, &target] {
      auto r = call(peer, "GET", target);
      return r && r->status == 200;
    }));
  std::optional<branch_info> owner;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (asked[i].get() && !owner)
      owner = all[i];
  return owner;
}

} // namespace cyme::api
