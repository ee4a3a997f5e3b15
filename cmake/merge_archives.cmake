# Merges static libraries into one with ar's MRI script (members of the same
# name from different libraries are all kept).
#   cmake -DAR=ar -DOUT=libx.a -DIN="liba.a|libb.a" -P merge_archives.cmake
string(REPLACE "|" ";" inputs "${IN}")
set(script "create ${OUT}.tmp\n")
foreach(lib ${inputs})
  string(APPEND script "addlib ${lib}\n")
endforeach()
string(APPEND script "save\nend\n")
file(WRITE ${OUT}.mri "${script}")
file(REMOVE ${OUT}.tmp)
execute_process(COMMAND ${AR} -M INPUT_FILE ${OUT}.mri RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${AR} -M could not merge ${IN}: ${rc}")
endif()
file(RENAME ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.mri)
