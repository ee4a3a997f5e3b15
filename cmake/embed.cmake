# Turns the file IN into a C source OUT defining
#   const char conveyor_demo_spec[]; const unsigned long conveyor_demo_spec_len;
file(READ ${IN} content HEX)
string(LENGTH "${content}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake. */\n"
  "const char conveyor_demo_spec[] = {${bytes} 0x00};\n"
  "const unsigned long conveyor_demo_spec_len = ${len};\n")
