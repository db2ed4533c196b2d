/*
 * savedlib: the small shared library the savedfiles target loads, built by
 * test/savefiles_test.go. Its code, read-only data and writable data are
 * each a mapping of the library file.
 */
static const int savedlib_table[] = { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9 };

int savedlib_calls;

int savedlib_value(int x)
{
	int sum = 0;

	savedlib_calls++;
	for (unsigned i = 0; i < sizeof(savedlib_table) / sizeof(savedlib_table[0]); i++)
		sum += savedlib_table[i] * (x + (int)i);
	return sum;
}
