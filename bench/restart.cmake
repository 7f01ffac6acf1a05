# Restart latency after kill -9, cyme beside its peers (bench/restart.sh):
# the probe that kills a supervised process and times its replacement.
add_executable(cyme-bench-respawn ${CMAKE_CURRENT_LIST_DIR}/respawn_probe.cpp)
target_link_libraries(cyme-bench-respawn PRIVATE cyme_kafka cyme_messages
  nlohmann_json::nlohmann_json CLI11::CLI11)
