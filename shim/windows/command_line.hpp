// Command lines for CreateProcessW: one argument quoted so that the CRT's
// parser (CommandLineToArgvW's rules) reads it back unchanged. Used by
// atomically.exe and by the Windows tests that start children.
#pragma once

#include <string>

namespace wrap_lockfile::win {

// One argument quoted as the CRT's command-line parser reads it back.
inline std::wstring quote_arg(const std::wstring &a) {
    if (!a.empty() && a.find_first_of(L" \t\n\v\"") == std::wstring::npos) return a;
    std::wstring out = L"\"";
    size_t backslashes = 0;
    for (wchar_t c : a) {
        if (c == L'\\') {
            ++backslashes;
            continue;
        }
        if (c == L'"') out.append(backslashes * 2 + 1, L'\\');
        else out.append(backslashes, L'\\');
        backslashes = 0;
        out += c;
    }
    out.append(backslashes * 2, L'\\');
    return out + L"\"";
}

}  // namespace wrap_lockfile::win
