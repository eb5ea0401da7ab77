# Fails when a doctest TEST_CASE name holds a semicolon: CMake lists split on it, so
# doctest_discover_tests would register two tests whose filters match nothing, and both would pass.
file(GLOB sources "${SOURCES}/*.cpp")
foreach(source IN LISTS sources)
  file(STRINGS "${source}" named REGEX "TEST_CASE\\(\"[^\"]*;")
  if(named)
    message(FATAL_ERROR "${source}: a TEST_CASE name holds a semicolon, which ctest would split into two empty tests")
  endif()
endforeach()
