// Resolving the target of a replacement on Windows, and opening it as the
// program would. The system resolves links: the path is opened (following
// symbolic links and junctions) and GetFinalPathNameByHandleW names what was
// reached, so the temp goes into the final target's directory and the links
// stay links.
#include "file.hpp"

#include <cerrno>
#include <cwchar>

namespace wrap_lockfile::win {

namespace {

// The final path of `h`, opened by `given`. GetFinalPathNameByHandleW
// resolves every link; Wine 8 fails it (ERROR_MORE_DATA) for paths beyond
// MAX_PATH whatever the buffer. Then the components of `given` are looked
// at one by one: with no link (reparse point) among them it is final.
int final_path_of(HANDLE h, const WPath &given, WPath *final) {
    int rc = final_path(h, final);
    if (rc == 0 || GetLastError() != ERROR_MORE_DATA) return rc;
    WPath prefix;
    const wchar_t *g = given.get();
    // Past "\\?\C:\" (or "\\?\UNC\server\share\"): the first component that can be a link.
    size_t start = 7;
    if (wcsncmp(g, L"\\\\?\\UNC\\", 8) == 0) {
        const wchar_t *share = wcschr(g + 8, L'\\');
        const wchar_t *rest = share ? wcschr(share + 1, L'\\') : nullptr;
        if (!rest) return final->assign(g, given.size());
        start = static_cast<size_t>(rest - g) + 1;
    }
    for (size_t i = start; i <= given.size(); ++i) {
        if (g[i] != L'\\' && g[i] != L'\0') continue;
        if (int prc = prefix.assign(g, i)) return prc;
        Handle look(open_for_query(prefix.get(), false));
        BY_HANDLE_FILE_INFORMATION info;
        if (!look || !GetFileInformationByHandle(look.get(), &info)) return errno_from(GetLastError());
        if (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) return ENAMETOOLONG;
    }
    return final->assign(g, given.size());
}

}  // namespace

int resolve_target(const char *path, WPath *final, bool *exists, BY_HANDLE_FILE_INFORMATION *info, DWORD *type,
                   const char **op) {
    *op = "path";
    WPath given;
    if (int rc = full_path(path, &given)) return rc;
    *op = "open";
    Handle h(open_for_query(given.get(), true));
    if (h) {
        *exists = true;
        *type = GetFileType(h.get());
        if (*type == FILE_TYPE_DISK && !GetFileInformationByHandle(h.get(), info)) return errno_from(GetLastError());
        if (*type != FILE_TYPE_DISK) return final->assign(given.get(), given.size());
        *op = "resolve the final path of";
        return final_path_of(h.get(), given, final);
    }
    DWORD e = GetLastError();
    if (e != ERROR_FILE_NOT_FOUND) return errno_from(e);
    *exists = false;
    // Nothing at the end of the links, or nothing at all?
    Handle link(open_for_query(given.get(), false));
    if (link) {
        // Creating through a dangling link would need the link's text
        // (FSCTL_GET_REPARSE_POINT) resolved by hand: refused instead.
        *op = "symbolic link %s points to a file that does not exist";
        return ENOENT;
    }
    size_t base = base_offset(given);
    if (base == 0) return ENOENT;
    WPath dir;
    if (int rc = dir.assign(given.get(), base - 1)) return rc;
    Handle d(open_for_query(dir.get(), true));
    if (!d) return errno_from(GetLastError());
    BY_HANDLE_FILE_INFORMATION dinfo;
    if (!GetFileInformationByHandle(d.get(), &dinfo)) return errno_from(GetLastError());
    if (!(dinfo.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) return ENOTDIR;
    *op = "resolve the final path of";
    if (int rc = final_path_of(d.get(), dir, final)) return rc;
    if (int rc = final->append(L"\\")) return rc;
    return final->append(given.get() + base);
}

bool is_link(const char *path) {
    WPath given;
    if (full_path(path, &given) != 0) return false;
    Handle h(open_for_query(given.get(), false));
    BY_HANDLE_FILE_INFORMATION info;
    return h && GetFileInformationByHandle(h.get(), &info) && (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT);
}

HANDLE open_target(const WPath &target, bool write, bool read, bool read_control) {
    DWORD access = (write ? GENERIC_WRITE : 0) | (read ? GENERIC_READ : 0) | (read_control ? READ_CONTROL : 0);
    return CreateFileW(target.get(), access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                       OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
}

}  // namespace wrap_lockfile::win
