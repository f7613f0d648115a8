# Run by CTest: cmake -DTROUPE_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=...
#   -DWORK_DIR=... -P check_install.cmake
# Fails (FATAL_ERROR) if any step fails or the program prints the wrong thing.

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")

run_step("install" ${CMAKE_COMMAND} --install "${TROUPE_BUILD_DIR}"
         --prefix "${prefix}")
foreach(f include/troupe/runtime/node.hpp include/troupe/bus/bus.hpp
          include/troupe/queue/task_queue.hpp include/troupe/stream/stream.hpp
          include/troupe/supervision/pool.hpp
          lib/cmake/troupe/troupe-config.cmake lib/cmake/troupe/FindCAF.cmake)
  if(NOT EXISTS "${prefix}/${f}")
    file(GLOB_RECURSE found RELATIVE "${prefix}" "${prefix}/*")
    message(FATAL_ERROR "not installed: ${f}; installed: ${found}")
  endif()
endforeach()

run_step("configure consumer" ${CMAKE_COMMAND} -S "${CONSUMER_SOURCE_DIR}"
         -B "${build}" -DCMAKE_PREFIX_PATH=${prefix}
         -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE})
run_step("build consumer" ${CMAKE_COMMAND} --build "${build}" -j2)
run_step("run consumer" "${build}/consumer_app" --adders 3)
if(NOT step_output STREQUAL "consumer total: 9\n")
  message(FATAL_ERROR "unexpected output from consumer_app: '${step_output}'")
endif()
message(STATUS "consumer built against ${prefix} and printed: ${step_output}")

# A bus-only consumer: configured with SQLite made unfindable, so it fails
# if the bus component needs SQLite, and its program must not load it.
set(bus_build "${WORK_DIR}/bus-consumer-build")
run_step("configure bus consumer" ${CMAKE_COMMAND}
         -S "${CONSUMER_SOURCE_DIR}/../bus_consumer" -B "${bus_build}"
         -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}
         -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=TRUE)
run_step("build bus consumer" ${CMAKE_COMMAND} --build "${bus_build}" -j2)
run_step("run bus consumer" "${bus_build}/bus_app")
if(NOT step_output STREQUAL "bus reply: hello world\n")
  message(FATAL_ERROR "unexpected output from bus_app: '${step_output}'")
endif()
file(STRINGS "${bus_build}/CMakeFiles/bus_app.dir/link.txt" link_line)
if(link_line MATCHES "sqlite")
  message(FATAL_ERROR "bus_app links SQLite: ${link_line}")
endif()
file(STRINGS "${build}/CMakeFiles/consumer_app.dir/link.txt" full_link_line)
if(NOT full_link_line MATCHES "sqlite")
  message(FATAL_ERROR "the link-line check is broken: consumer_app, which "
                      "links troupe::troupe, does not name SQLite either")
endif()
message(STATUS "bus consumer built without SQLite and printed: ${step_output}")
