//! MS-PAC: the Privilege Attribute Certificate in a ticket's authorization data.
//! (to be built: see the PAC brief)
