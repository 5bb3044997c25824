/*
 * row_insert.h
 *		One row inserted straight through the table access method
 *		(row_insert.c).
 */
#ifndef ROW_INSERT_H
#define ROW_INSERT_H

#include "postgres.h"

extern bool row_insert(const char *table, int ncols, const char *const *cols,
					   const Datum *values, const bool *nulls);

#endif							/* ROW_INSERT_H */
