// The temp of a replacement on Windows: a new file next to the final target
// (so the rename never crosses volumes), hidden by name and attribute until
// the commit, removed on every failure; what it takes over from the target
// (content, DACL; attributes and creation time at the commit, commit.cpp).
#include "file.hpp"

#include "internal.hpp"

#include <aclapi.h>
#include <io.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace wrap_lockfile::win {

namespace {

constexpr int kNameAttempts = 100;

}  // namespace

int create_temp(const WPath &target, const char *suffix, WPath *temp, HANDLE *out) {
    wchar_t wsuffix[64];
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, suffix, -1, wsuffix, 64);
    if (n <= 0) return EINVAL;
    size_t base = base_offset(target);
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
        // "<dir>\.<base>.<8 random><suffix>", as the POSIX layer names its temps.
        wchar_t rnd[10];
        rnd[0] = L'.';
        uint64_t r = detail::random_u64();
        for (int i = 1; i <= 8; ++i) {
            rnd[i] = static_cast<wchar_t>(alphabet[r % 62]);
            r /= 62;
        }
        rnd[9] = L'\0';
        int rc = temp->assign(target.get(), base);
        if (!rc) rc = temp->append(L".");
        if (!rc) rc = temp->append(target.get() + base);
        if (!rc) rc = temp->append(rnd);
        if (!rc) rc = temp->append(wsuffix);
        if (rc) return rc;
        // Nobody else writes to it; readers (scanners) may look.
        HANDLE h = CreateFileW(temp->get(), GENERIC_READ | GENERIC_WRITE | DELETE | READ_CONTROL | WRITE_DAC,
                               FILE_SHARE_READ, nullptr, CREATE_NEW, FILE_ATTRIBUTE_HIDDEN, nullptr);
        if (h != INVALID_HANDLE_VALUE) {
            *out = h;
            return 0;
        }
        DWORD e = GetLastError();
        if (e != ERROR_FILE_EXISTS && e != ERROR_ALREADY_EXISTS) return errno_from(e);
    }
    return EEXIST;
}

void remove_temp(wlf_file *f) {
    if (f->h != INVALID_HANDLE_VALUE) {
        // By handle: exactly our file, whatever its name has become.
        FILE_DISPOSITION_INFO gone{TRUE};
        bool by_handle = SetFileInformationByHandle(f->h, FileDispositionInfo, &gone, sizeof gone);
        if (f->fd >= 0) _close(f->fd);
        else CloseHandle(f->h);
        f->fd = -1;
        f->h = INVALID_HANDLE_VALUE;
        if (by_handle) return;
    }
    if (f->temp_w.size()) DeleteFileW(f->temp_w.get());
}

int copy_security(HANDLE target, HANDLE temp) {
    PACL dacl = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    DWORD rc = GetSecurityInfo(target, SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, nullptr, nullptr, &dacl, nullptr,
                               &sd);
    if (rc != ERROR_SUCCESS) return errno_from(rc);
    SECURITY_DESCRIPTOR_CONTROL control = 0;
    DWORD revision = 0;
    if (!GetSecurityDescriptorControl(sd, &control, &revision)) {
        rc = GetLastError();
        LocalFree(sd);
        return errno_from(rc);
    }
    // A protected DACL stays protected; an inheriting one inherits from
    // the same directory again, as the target's did.
    SECURITY_INFORMATION what = DACL_SECURITY_INFORMATION | ((control & SE_DACL_PROTECTED)
                                                                 ? PROTECTED_DACL_SECURITY_INFORMATION
                                                                 : UNPROTECTED_DACL_SECURITY_INFORMATION);
    rc = SetSecurityInfo(temp, SE_FILE_OBJECT, what, nullptr, nullptr, dacl, nullptr);
    LocalFree(sd);
    return rc == ERROR_SUCCESS ? 0 : errno_from(rc);
}

int copy_content(HANDLE target, HANDLE temp) {
    constexpr DWORD kChunk = 1 << 16;
    char *buf = static_cast<char *>(malloc(kChunk));
    if (!buf) return ENOMEM;
    int rc = 0;
    for (;;) {
        DWORD got = 0;
        if (!ReadFile(target, buf, kChunk, &got, nullptr)) {
            rc = errno_from(GetLastError());
            break;
        }
        if (got == 0) break;
        DWORD done = 0;
        while (done < got) {
            DWORD put = 0;
            if (!WriteFile(temp, buf + done, got - done, &put, nullptr)) {
                rc = errno_from(GetLastError());
                break;
            }
            done += put;
        }
        if (rc) break;
    }
    free(buf);
    return rc;
}

}  // namespace wrap_lockfile::win
