# Command-line words from option values, shared by the modules: a flag with its value when the
# value is set, a flag once per list item, a switch when on.
lib:
{
  value = flag: v: lib.optionals (v != null) [ flag (toString v) ];
  each = flag: lib.concatMap (v: [ flag (toString v) ]);
  switch = flag: on: lib.optional on flag;
}
