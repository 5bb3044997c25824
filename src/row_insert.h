/*
 * row_insert.h
 *		One row inserted straight through the table access method
 *		(row_insert.c).
 */
#ifndef ROW_INSERT_H
#define ROW_INSERT_H

#include "postgres.h"

typedef enum RowInsertResult
{
	ROW_INSERT_DONE,
	ROW_INSERT_CONFLICT,
	ROW_INSERT_STATEMENT
} RowInsertResult;

extern bool row_insert(const char *table, int ncols, const char *const *cols,
					   const Datum *values, const bool *nulls);

extern RowInsertResult row_insert_new(const char *table, int ncols, const char *const *cols,
									  const Datum *values, const bool *nulls);

#endif							/* ROW_INSERT_H */
