-- Prints the interop matrix (peer x scenario x direction) from the lines the
-- interop specs append to build/interop/results.txt:
--   lua5.4 spec/interop/report.lua [build/interop/results.txt]
-- Lua 5.1 compatible.
local path = arg and arg[1] or "build/interop/results.txt"
local f = assert(io.open(path, "rb"))
local cols, rows, cells, seen_col, seen_row = {}, {}, {}, {}, {}
for line in f:lines() do
  local peer, dir, scen, result = line:match("^%[interop%] (%S+) (%S+) (%S+) (%S+)")
  if peer then
    local col = peer .. " " .. (dir:match("^lua%-client") and "lua→peer" or "peer→lua")
    if not seen_col[col] then seen_col[col] = true; cols[#cols + 1] = col end
    if not seen_row[scen] then seen_row[scen] = true; rows[#rows + 1] = scen end
    cells[scen .. "|" .. col] = result
  end
end
f:close()
io.write("| scenario | ", table.concat(cols, " | "), " |\n")
io.write("| --- |", string.rep(" --- |", #cols), "\n")
for _, r in ipairs(rows) do
  local t = {}
  for i, c in ipairs(cols) do t[i] = cells[r .. "|" .. c] or "" end
  io.write("| ", r, " | ", table.concat(t, " | "), " |\n")
end
