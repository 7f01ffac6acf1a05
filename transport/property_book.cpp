#include "transport/property_book.hpp"

namespace cyme::kafka {

property_book::property_book(config_map branch) : branch_(std::move(branch)) {
}

config_map property_book::for_broker(const std::string& bootstrap) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = own_.find(bootstrap);
  return i != own_.end() ? i->second : branch_;
}

std::optional<config_map>
property_book::own(const std::string& bootstrap) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = own_.find(bootstrap);
  if (i == own_.end())
    return std::nullopt;
  return i->second;
}

void property_book::set_own(const std::string& bootstrap,
                            std::optional<config_map> props) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = own_.find(bootstrap);
  bool had = i != own_.end();
  if (!props && !had)
    return;
  if (props && had && i->second == *props)
    return;
  if (props)
    own_[bootstrap] = std::move(*props);
  else
    own_.erase(i);
  versions_[bootstrap] += 1;
}

uint64_t property_book::version(const std::string& bootstrap) const {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = versions_.find(bootstrap);
  return i == versions_.end() ? 0 : i->second;
}

} // namespace cyme::kafka
