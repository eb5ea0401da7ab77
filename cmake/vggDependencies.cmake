# What vgg::vgg needs, found the same way in the build tree and in an installed copy.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(xsimd 8 REQUIRED)
find_package(OpenMP REQUIRED)
# Debian's xsimd 8.1 package links a library named xtl that Debian does not ship; xsimd itself
# needs nothing from it, so an empty stand-in target satisfies the link.
if(NOT TARGET xtl)
  add_library(xtl INTERFACE IMPORTED)
endif()
