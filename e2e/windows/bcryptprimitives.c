/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's std asks ProcessPrng for random bytes
 * (Windows 10 and later have it). This one takes them from RtlGenRandom (advapi32). Only the Wine
 * prefix of the Windows smoke test gets it; nothing that ships uses it. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
