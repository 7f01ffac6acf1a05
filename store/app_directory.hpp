#pragma once

/// The broker of every app in the model, readable from any thread without
/// asking the store actor. The store keeps it: it fills it when it opens
/// the model and sets an app's entry again after every change that may
/// touch the app, from what it has just committed. Task submission reads it
/// on every request, where a round trip to the store (and its SQLite read)
/// would cost more than producing the task.

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace cyme {

class app_directory {
public:
  /// The app's broker ("" for the branch's default), or none when the
  /// model has no such app.
  std::optional<std::string> broker_of(const std::string& app) const {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = brokers_.find(app);
    if (i == brokers_.end())
      return std::nullopt;
    return i->second;
  }

  void set(const std::string& app, std::string broker) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    brokers_[app] = std::move(broker);
  }

  void erase(const std::string& app) {
    std::unique_lock<std::shared_mutex> guard{mtx_};
    brokers_.erase(app);
  }

private:
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, std::string> brokers_;
};

} // namespace cyme
