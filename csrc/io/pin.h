/* Keep this shared object mapped until the process exits. */
#ifndef WS_PIN_H
#define WS_PIN_H

/* A detached thread (the resolver's) may still run code of this module
 * after the host unloaded it (lua_close dlcloses C modules at a script's
 * exit).  Call before starting such a thread; the first call pins the
 * module where the platform allows it, later calls do nothing. */
void ws_pin_module(void);

#endif
