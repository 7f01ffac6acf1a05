# The Debian package, cyme_<version>_amd64.deb, built by CPack from the
# install rules: `cpack --config BUILD/CPackConfig.cmake` (see
# tests/package/check.sh, which also checks it with lintian and installs,
# runs and purges it).
#
# Install components:
#   runtime  programs (bin/) and their manual pages (share/man/man1),
#            kafka.sh and its pom.xml (share/cyme/kafka), the README and the
#            package's copyright and changelog (share/doc/cyme)
#   system   the systemd units (lib/systemd/system) and the example config
#            (etc/cyme/branch.conf)
#   dev      the libraries, headers and CMake package (find_package(cyme))
# The package holds runtime under /usr and system under / (the units in
# /lib/systemd/system, the config in /etc/cyme); `cmake --install` puts all
# three under its prefix. The package's user, state folder and purge are
# deploy/debian/post{inst,rm}.

install(FILES deploy/systemd/cyme-branch.service
  deploy/systemd/cyme-kafka.service
  DESTINATION lib/systemd/system COMPONENT system)
install(FILES deploy/debian/branch.conf DESTINATION etc/cyme COMPONENT system)
install(PROGRAMS deploy/kafka/kafka.sh
  DESTINATION "${CMAKE_INSTALL_DATADIR}/cyme/kafka" COMPONENT runtime)
install(FILES deploy/kafka/pom.xml
  DESTINATION "${CMAKE_INSTALL_DATADIR}/cyme/kafka" COMPONENT runtime)

# Debian wants the changelog compressed without a time stamp (gzip -n).
# A native package (no Debian revision): its changelog is changelog.gz.
set(CYME_DEB_CHANGELOG "${CMAKE_CURRENT_BINARY_DIR}/changelog.gz")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/changelog")
execute_process(
  COMMAND gzip -9 -n -c "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/changelog"
  OUTPUT_FILE "${CYME_DEB_CHANGELOG}" COMMAND_ERROR_IS_FATAL ANY)
install(FILES README.md deploy/debian/copyright "${CYME_DEB_CHANGELOG}"
  DESTINATION "${CMAKE_INSTALL_DATADIR}/doc/cyme" COMPONENT runtime)

# A manual page per program, made by help2man from its --help and
# --version (release builds only: the sanitizers' builds are not packaged).
if(NOT CYME_SANITIZE AND NOT CYME_FUZZ)
  find_program(HELP2MAN help2man REQUIRED)
  set(CYME_MAN_NAMES
    "cyme-branch|the branch daemon: keeps this host's worker instances in the state the model describes"
    "cyme|command-line client of a cyme branch's HTTP API and of remote supervisors"
    "cyme-worker|a cyme worker instance: consumes task queues over Kafka, steered by its branch"
    "cyme-log|writes and rotates the log of a cyme instance"
    "cyme-embedded-kafka|an in-memory Kafka cluster on loopback for a cyme branch"
    "cyme-explore|explores random schedules of faults against the cyme supervisor in virtual time"
    "cyme-scenario|runs a cyme scenario file against the supervisor in virtual time")
  set(CYME_MAN_PAGES)
  foreach(entry IN LISTS CYME_MAN_NAMES)
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 program)
    list(GET parts 1 summary)
    set(page "${CMAKE_CURRENT_BINARY_DIR}/man/${program}.1")
    add_custom_command(OUTPUT "${page}.gz"
      COMMAND "${CMAKE_COMMAND}" -E make_directory
        "${CMAKE_CURRENT_BINARY_DIR}/man"
      COMMAND "${HELP2MAN}" --no-info --name "${summary}"
        --output "${page}" "$<TARGET_FILE:${program}>"
      COMMAND gzip -9 -n -f "${page}"
      DEPENDS ${program}
      COMMENT "Manual page of ${program}"
      VERBATIM)
    list(APPEND CYME_MAN_PAGES "${page}.gz")
  endforeach()
  add_custom_target(cyme_man_pages ALL DEPENDS ${CYME_MAN_PAGES})
  install(FILES ${CYME_MAN_PAGES}
    DESTINATION "${CMAKE_INSTALL_MANDIR}/man1" COMPONENT runtime)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cyme)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "cyme developers <cyme@cyme.dev>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "supervisor of worker process fleets driven over Kafka")
set(CPACK_PACKAGE_DESCRIPTION
  "cyme keeps the worker instances of each host in the state a durable\n\
model describes: it starts new ones, stops removed ones, restarts dead\n\
or unresponsive ones, and tells each over Kafka which queues to consume\n\
at which concurrency. Operators drive it over HTTP, with the cyme\n\
command-line client and with typed actor messages from remote nodes.\n\
.\n\
This package holds the branch daemon (cyme-branch), its worker and log\n\
writer, the embedded Kafka cluster, the cyme client, the scenario tools,\n\
and systemd units for the branch and for a single-node Kafka broker.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# adduser: the maintainer scripts make and remove the system user.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/postinst"
  "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/prerm"
  "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/postrm"
  "${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian/conffiles")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX "/")
set(CPACK_INSTALL_CMAKE_PROJECTS
  "${CMAKE_CURRENT_BINARY_DIR};cyme;runtime;/usr"
  "${CMAKE_CURRENT_BINARY_DIR};cyme;system;/")
include(CPack)
