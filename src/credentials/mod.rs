//! Provider credentials: store, read, delete (SPEC section 4).
