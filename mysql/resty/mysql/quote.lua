-- resty.mysql.quote: quote_sql_str for resty.mysql -- a string as a SQL string literal.
-- The server must not run with NO_BACKSLASH_ESCAPES, and the connection character set must
-- be ASCII-compatible: utf8mb4, latin1, ...; never use it with big5, sjis, gbk and such,
-- where a multibyte character can end in a backslash byte.

local ngx = ngx
local type, error = type, error
local gsub = string.gsub

local _M = { _VERSION = "0.1.0" }

local SQL_ESCAPES = {
    ["\0"] = "\\0", ["\b"] = "\\b", ["\t"] = "\\t", ["\n"] = "\\n", ["\r"] = "\\r",
    ["\26"] = "\\Z", ["\""] = "\\\"", ["'"] = "\\'", ["\\"] = "\\\\",
}

-- the same as ngx.quote_sql_str, in Lua
local function quote_sql_str_lua(s)
    if type(s) ~= "string" then
        error("bad argument #1 to 'quote_sql_str' (string expected, got " .. type(s) .. ")", 2)
    end
    return "'" .. gsub(s, "[%z\b\t\n\r\26\"'\\]", SQL_ESCAPES) .. "'"
end
_M.quote_sql_str_lua = quote_sql_str_lua

-- ngx.quote_sql_str when the runtime has it
_M.quote_sql_str = ngx.quote_sql_str or quote_sql_str_lua

return _M
