#include "apps/cli/render.hpp"

#include <algorithm>
#include <ostream>

namespace cyme::cli {

namespace {

using json = nlohmann::ordered_json;

/// The member `key` of `object` as cell text, or "-" when absent, so a
/// missing field shows as missing instead of shifting the columns.
std::string member_text(const json& object, const char* key) {
  auto i = object.find(key);
  if (i == object.end() || i->is_null())
    return "-";
  auto text = cell_text(*i);
  return text.empty() ? "-" : text;
}

/// "2 (1-4)": the observed concurrency and the model's bounds in one column,
/// because people read them together when judging autoscaling.
std::string concurrency_text(const json& instance) {
  return member_text(instance, "concurrency") + " ("
         + member_text(instance, "min_concurrency") + "-"
         + member_text(instance, "max_concurrency") + ")";
}

std::string pid_text(const json& instance) {
  auto i = instance.find("pid");
  // pid 0 is the supervisor's way of saying "no process".
  if (i == instance.end() || !i->is_number_integer() || i->get<long>() <= 0)
    return "-";
  return i->dump();
}

std::string enabled_text(const json& instance) {
  auto i = instance.find("is_enabled");
  if (i == instance.end() || !i->is_boolean())
    return "-";
  return i->get<bool>() ? "yes" : "no";
}

void print_instances(const json& list, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  for (auto& x : list) {
    if (!x.is_object()) {
      out << list.dump(2) << "\n";
      return;
    }
    rows.push_back({member_text(x, "name"), member_text(x, "branch"),
                    member_text(x, "state"), pid_text(x),
                    member_text(x, "restarts"), member_text(x, "queues"),
                    concurrency_text(x), enabled_text(x)});
  }
  print_table({"NAME", "BRANCH", "STATE", "PID", "RESTARTS", "QUEUES",
               "CONCURRENCY", "ENABLED"},
              rows, out);
}

void print_names(const std::string& title, const json& list,
                 std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  for (auto& x : list)
    rows.push_back({cell_text(x)});
  print_table({title}, rows, out);
}

} // namespace

std::string cell_text(const json& value) {
  if (value.is_null())
    return {};
  if (value.is_string())
    return value.get<std::string>();
  if (value.is_array()
      && std::all_of(value.begin(), value.end(),
                     [](const json& x) { return x.is_string(); })) {
    std::string text;
    for (auto& x : value) {
      if (!text.empty())
        text += ",";
      text += x.get<std::string>();
    }
    return text;
  }
  return value.dump();
}

void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows,
                 std::ostream& out) {
  std::vector<size_t> widths;
  for (auto& h : header)
    widths.push_back(h.size());
  for (auto& row : rows)
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  auto print_row = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      out << row[i];
      if (i + 1 < row.size())
        out << std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << "\n";
  };
  print_row(header);
  for (auto& row : rows)
    print_row(row);
}

void print_object(const json& object, std::ostream& out) {
  for (auto& [key, value] : object.items()) {
    auto text = cell_text(value);
    out << key << ":";
    if (!text.empty())
      out << " " << text;
    out << "\n";
  }
}

void print_answer(view how, const std::string& names_title,
                  const json& answer, std::ostream& out) {
  switch (how) {
    case view::names:
      if (answer.is_array()) {
        print_names(names_title, answer, out);
        return;
      }
      break;
    case view::instances:
      if (answer.is_array()) {
        print_instances(answer, out);
        return;
      }
      break;
    case view::task_id:
      if (answer.is_object() && answer.contains("id")) {
        out << cell_text(answer["id"]) << "\n";
        return;
      }
      break;
    case view::task_ids:
      if (answer.is_object() && answer.contains("ids")
          && answer["ids"].is_array()) {
        for (auto& id : answer["ids"])
          out << cell_text(id) << "\n";
        return;
      }
      break;
    case view::object:
    case view::event_stream:
    case view::text_stream:
      // Streams are printed as they arrive, not here.
      break;
  }
  if (answer.is_object())
    print_object(answer, out);
  else
    out << answer.dump(2) << "\n";
}

} // namespace cyme::cli
