// libFuzzer target: the JSON wire format. Any bytes must decode to a value
// or to a reason, never crash; what decodes must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "messages/wire.hpp"
#include "transport/presence.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes{reinterpret_cast<const char*>(data), size};
  if (auto c = cyme::decode_command(bytes)) {
    auto again = cyme::decode_command(cyme::encode_command(*c.value));
    if (!again || again.value->id != c.value->id
        || again.value->command.destinations != c.value->command.destinations)
      __builtin_trap();
  } else if (c.error.empty()) {
    __builtin_trap();
  }
  if (auto r = cyme::decode_reply(bytes)) {
    auto again = cyme::decode_reply(cyme::encode_reply(*r.value));
    if (!again || again.value->reply.instance != r.value->reply.instance)
      __builtin_trap();
  }
  if (auto t = cyme::decode_task(bytes)) {
    auto again = cyme::decode_task(cyme::encode_task(*t.value));
    if (!again || again.value->id != t.value->id)
      __builtin_trap();
  }
  if (auto r = cyme::decode_result(bytes))
    if (!cyme::decode_result(cyme::encode_result(*r.value)))
      __builtin_trap();
  cyme::decode_presence(bytes);
  return 0;
}
