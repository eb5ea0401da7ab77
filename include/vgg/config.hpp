#pragma once
// Version of the vgg library; CMake parses these three lines.
#define VGG_VERSION_MAJOR 0
#define VGG_VERSION_MINOR 1
#define VGG_VERSION_PATCH 0
