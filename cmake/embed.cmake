# Turns the file IN into a C source OUT defining
#   const char NAME[]; const unsigned long NAME_len;
# (NAME defaults to conveyor_demo_spec); the text is NUL-terminated.
if(NOT NAME)
  set(NAME conveyor_demo_spec)
endif()
file(READ ${IN} content HEX)
string(LENGTH "${content}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake. */\n"
  "const char ${NAME}[] = {${bytes} 0x00};\n"
  "const unsigned long ${NAME}_len = ${len};\n")
