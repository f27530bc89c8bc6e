-- LDoc filter (ldoc --filter doc_names.list): one line per documented
-- item ("I", module, name) and per documented field or parameter of an
-- item ("P", module, item, field).  scripts/doc_check.lua reads them.
return {
  list = function(docs)
    for _, m in ipairs(docs) do
      for _, item in ipairs(m.items) do
        print(table.concat({ "I", m.name, item.name }, "\t"))
        for _, p in ipairs(item.params or {}) do
          print(table.concat({ "P", m.name, item.name, p }, "\t"))
        end
      end
    end
  end,
}
